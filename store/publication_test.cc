// Push and pull between two real stores whose sets are local folders (the
// RADOS case, the one users run, is tests/rados/rados_mount_test; the code
// above the volume interface is the same).
#include "store/publication.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "store/fsck.h"
#include "store/gc.h"
#include "store/gc_fsck_testutil.h"

namespace overtier {
namespace {

using test::ImageFiles;
using test::Payload;

bool HasSubstr(const std::string& s, const std::string& sub) {
  return s.find(sub) != std::string::npos;
}

class PublicationTest : public test::StoreFixture {
 protected:
  // The publisher: the fixture's store_ at path_, sets "fast" and "cold",
  // two copies; "app" stacks on "base".
  void MakePublisher() {
    MakeStore(test::kTestVvSize, {"fast", "cold"});
    AddImage("base", base_);
    ImageRecord b;
    ASSERT_TRUE(store_->catalog()->GetImage("base", &b).ok());
    AddImage("app", app_, b.image_id);
    cold_ = path_ + "/volumes/cold";
  }

  void MakePuller() {
    puller_path_ = dir_.path() + "/puller";
    StoreInitOptions o;
    o.chunk_size = test::kTestChunk;
    o.vv_size = test::kTestVvSize;
    Status s = Store::Init(puller_path_, o, &puller_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void ReopenPuller() {
    puller_.reset();
    Status s = Store::Open(puller_path_, StoreOpenOptions(), &puller_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  PushReport Push(const std::string& name, const std::string& set = "cold") {
    PushReport r;
    Status s = PushImage(store_.get(), name, set, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }

  PullReport Pull(const std::string& name, const std::string& as = "") {
    PullReport r;
    Status s = PullImage(puller_.get(), name, cold_, as, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }

  void ExpectPulled(const std::string& image, const ImageFiles& files) {
    ExpectImage(image, files, puller_.get());
  }

  std::string BaseLocalName() {
    ImageRecord b;
    EXPECT_TRUE(store_->catalog()->GetImage("base", &b).ok());
    return "base@" + store_->config().id.ToHex().substr(0, 16) + "." + std::to_string(b.image_id);
  }

  size_t FsckErrors(Store* store) {
    FsckReport r;
    Status s = RunFsck(store, FsckOptions(), &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    for (const FsckIssue& i : r.issues) {
      if (i.severity == FsckSeverity::kError) ADD_FAILURE() << i.kind << ": " << i.message;
    }
    return r.errors();
  }

  GcReport Gc(Store* store, double threshold = 0.5) {
    GcOptions o;
    o.threshold = threshold;
    GcReport r;
    Status s = RunGc(store, o, &r);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return r;
  }

  const ImageFiles base_{{"etc/os-release", Payload(300, 1)}, {"bin/sh", Payload(20000, 2)}};
  const ImageFiles app_{{"app/main", Payload(30000, 3)}, {"app/data", Payload(9000, 4)}};
  std::string cold_;
  std::string puller_path_;
  std::unique_ptr<Store> puller_;
};

TEST_F(PublicationTest, PulledImageReadsThePublishersContainers) {
  MakePublisher();
  MakePuller();
  PushReport pr = Push("app");
  EXPECT_EQ(pr.set, "cold");
  EXPECT_EQ(pr.layers, 2u);
  EXPECT_EQ(pr.files, 4u);
  PullReport r = Pull("app");
  EXPECT_EQ(r.name, "app");
  EXPECT_EQ(r.layers_added, 2u);
  EXPECT_EQ(r.files, 4u);
  EXPECT_EQ(r.remote_set, "remote1");
  ExpectPulled("app", app_);
  ExpectPulled(BaseLocalName(), base_);

  // Nothing was copied: the puller's own set holds no container, and its
  // rows point at the publisher's.
  std::vector<uint64_t> own;
  ASSERT_TRUE(puller_->volume_sets()[0]->List(&own).ok());
  EXPECT_TRUE(own.empty());
  size_t remote = 0;
  ASSERT_TRUE(puller_->catalog()
                  ->ScanVolumes(0,
                                [&](uint64_t, const VolumeRecord& v) {
                                  EXPECT_EQ(v.state, VolumeState::kRemote);
                                  EXPECT_EQ(v.set, "remote1");
                                  remote++;
                                  return true;
                                })
                  .ok());
  EXPECT_EQ(remote, pr.volumes);

  // A new process sees the same (store.conf carries the remote set).
  ReopenPuller();
  ASSERT_EQ(puller_->config().remote_sets.size(), 1u);
  EXPECT_EQ(puller_->config().remote_sets[0].owner, store_->config().id);
  EXPECT_EQ(puller_->config().remote_sets[0].origin_set, "cold");
  ExpectPulled("app", app_);
  EXPECT_EQ(FsckErrors(puller_.get()), 0u);
  EXPECT_EQ(FsckErrors(store_.get()), 0u);
}

TEST_F(PublicationTest, ASecondImageOnTheSameBaseReusesTheLayer) {
  MakePublisher();
  ImageRecord b;
  ASSERT_TRUE(store_->catalog()->GetImage("base", &b).ok());
  const ImageFiles tool{{"usr/bin/tool", Payload(7000, 9)}};
  AddImage("tool", tool, b.image_id);
  MakePuller();
  Push("app");
  Push("tool");
  Pull("app");
  PullReport r = Pull("tool", "my-tool");
  EXPECT_EQ(r.name, "my-tool");
  EXPECT_EQ(r.layers_added, 1u);
  EXPECT_EQ(r.layers_reused, 1u);
  ExpectPulled("my-tool", tool);
  ImageRecord top, app;
  ASSERT_TRUE(puller_->catalog()->GetImage("my-tool", &top).ok());
  ASSERT_TRUE(puller_->catalog()->GetImage("app", &app).ok());
  EXPECT_EQ(top.parent_image_id, app.parent_image_id);  // one base layer

  // Pulling a name that exists is refused, naming the way out.
  PullReport again;
  Status s = PullImage(puller_.get(), "app", cold_, "", &again);
  EXPECT_EQ(s.err(), EEXIST);
  EXPECT_TRUE(HasSubstr(s.message(), "--as")) << s.message();
}

TEST_F(PublicationTest, PublisherGcKeepsPublishedContainersUntilWithdrawn) {
  MakePublisher();
  MakePuller();
  Push("app");
  Pull("app");
  const std::string base = BaseLocalName();
  std::vector<uint64_t> cold_before, cold_after, fast_after;
  ASSERT_TRUE(store_->volume_set("cold")->List(&cold_before).ok());
  // The publisher forgets the images entirely, and compacts all it can:
  // the other copies (set "fast") go, the published ones stay as they are.
  RemoveImage("app");
  RemoveImage("base");
  GcReport g = Gc(store_.get(), 1.0);
  EXPECT_EQ(g.containers_compacted, 0u);
  ASSERT_TRUE(store_->volume_set("cold")->List(&cold_after).ok());
  ASSERT_TRUE(store_->volume_set("fast")->List(&fast_after).ok());
  EXPECT_EQ(cold_after, cold_before);
  EXPECT_TRUE(fast_after.empty());
  ExpectPulled("app", app_);
  ExpectPulled(base, base_);

  std::string set;
  Status s = WithdrawImage(store_.get(), "app", "cold", &set);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(WithdrawImage(store_.get(), "app", "cold", &set).err(), ENOENT);
  Reopen();  // gc removes containers only when no mount (or reader) pins them
  g = Gc(store_.get(), 1.0);
  EXPECT_GT(g.containers_removed, 0u);
  // The puller's reads now fail, saying whose container is gone.
  ReopenPuller();
  std::string got;
  s = ReadFile(puller_.get(), "app", "app/main", &got);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(HasSubstr(s.ToString(), store_->config().id.ToHex())) << s.ToString();
}

TEST_F(PublicationTest, PullerGcForgetsRemoteRowsAndNeverTouchesTheContainers) {
  MakePublisher();
  MakePuller();
  Push("app");
  Pull("app");
  std::vector<uint64_t> before;
  ASSERT_TRUE(store_->volume_set("cold")->List(&before).ok());
  {
    Catalog::Batch b(puller_->catalog());
    b.DeleteImage("app");
    b.DeleteImage(BaseLocalName());
    ASSERT_TRUE(b.Commit().ok());
  }
  GcReport g = Gc(puller_.get(), 1.0);
  EXPECT_GT(g.remote_volumes_forgotten, 0u);
  EXPECT_EQ(g.containers_removed, 0u);
  EXPECT_EQ(g.stored_bytes, 0u);
  size_t rows = 0;
  ASSERT_TRUE(puller_->catalog()
                  ->ScanVolumes(0,
                                [&](uint64_t, const VolumeRecord&) {
                                  rows++;
                                  return true;
                                })
                  .ok());
  EXPECT_EQ(rows, 0u);
  std::vector<uint64_t> after;
  ASSERT_TRUE(store_->volume_set("cold")->List(&after).ok());
  EXPECT_EQ(after, before);
  ExpectImage("app", app_);  // the publisher's own view is untouched
}

TEST_F(PublicationTest, PushRefusesContentWithoutACopyInTheSet) {
  MakeStore(test::kTestVvSize, {"fast"});
  AddImage("old", {{"f", Payload(5000, 5)}});
  store_.reset();
  Status s = Store::AddVolumeSet(path_, {"cold", ""}, 0);
  ASSERT_TRUE(s.ok()) << s.ToString();
  Reopen();
  PushReport r;
  s = PushImage(store_.get(), "old", "cold", &r);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "no readable copy in volume set 'cold'")) << s.message();
  s = PushImage(store_.get(), "old", "", &r);
  EXPECT_TRUE(HasSubstr(s.message(), "name the set to publish in with --set")) << s.message();
  s = PushImage(store_.get(), "old", "nope", &r);
  EXPECT_EQ(s.err(), ENOENT);
  s = PushImage(store_.get(), "missing", "fast", &r);
  EXPECT_EQ(s.err(), ENOENT);
  // The same set is fine.
  EXPECT_TRUE(PushImage(store_.get(), "old", "fast", &r).ok());
}

TEST_F(PublicationTest, PullRefusesBadPublicationsAndChangesNothing) {
  MakePublisher();
  MakePuller();
  PullReport r;
  // Not published.
  Status s = PullImage(puller_.get(), "app", cold_, "", &r);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "not published")) << s.message();
  // Its own set.
  Push("app");
  PullReport self;
  s = PullImage(store_.get(), "app", cold_, "copy", &self);
  EXPECT_EQ(s.err(), EINVAL);
  // A damaged manifest.
  const std::string obj = cold_ + "/obj-" + PublicationObjectName("app");
  std::string bytes;
  {
    std::ifstream in(obj, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  ASSERT_GT(bytes.size(), 100u);
  std::string bad = bytes;
  bad[bad.size() / 2] ^= 1;
  std::ofstream(obj, std::ios::binary | std::ios::trunc) << bad;
  s = PullImage(puller_.get(), "app", cold_, "", &r);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_TRUE(HasSubstr(s.message(), "checksum mismatch")) << s.message();
  // A location that is nothing.
  s = PullImage(puller_.get(), "app", dir_.path() + "/nowhere", "", &r);
  EXPECT_EQ(s.err(), ENOENT);
  s = PullImage(puller_.get(), "app", "relative/path", "", &r);
  EXPECT_EQ(s.err(), EINVAL);
  // None of it left a row or a remote set behind.
  ImageRecord none;
  EXPECT_EQ(puller_->catalog()->GetImage("app", &none).err(), ENOENT);
  ReopenPuller();
  EXPECT_TRUE(puller_->config().remote_sets.empty());
  std::ofstream(obj, std::ios::binary | std::ios::trunc) << bytes;
  Pull("app");
  ExpectPulled("app", app_);
}

// A push over an existing publication replaces it whole: a longer manifest
// in more pieces, then a shorter one, leaves no stale piece.
TEST_F(PublicationTest, RepushReplacesThePublication) {
  MakePublisher();
  Push("app");
  std::vector<std::string> names;
  ASSERT_TRUE(store_->volume_set("cold")->ListObjects("img-", &names).ok());
  EXPECT_EQ(names.size(), 1u);
  // A piece left by a longer manifest goes; names that are no piece
  // number (one too large for any) are not ours and stay.
  VolumeSet* cold = store_->volume_set("cold");
  const std::string head = PublicationObjectName("app");
  ASSERT_TRUE(cold->PutObject(head + ".7", "stale").ok());
  ASSERT_TRUE(cold->PutObject(head + ".99999999999999999999999", "odd").ok());
  Push("app");
  ASSERT_TRUE(cold->ListObjects("img-", &names).ok());
  EXPECT_EQ(names, (std::vector<std::string>{head, head + ".99999999999999999999999"}));
  ASSERT_TRUE(cold->RemoveObject(head + ".99999999999999999999999").ok());
  Push("app");
  ASSERT_TRUE(store_->volume_set("cold")->ListObjects("img-", &names).ok());
  EXPECT_EQ(names.size(), 1u);
  Publication p;
  ASSERT_TRUE(ReadPublication(store_->volume_set("cold"), "app", &p).ok());
  EXPECT_EQ(p.layers.size(), 2u);
  EXPECT_EQ(p.layers[1].name, "base");
}

TEST(RemoteSetConfig, StoreConfRoundTripsAndRefusesNonsense) {
  StoreConfig c;
  c.id.bytes[0] = 1;
  c.sets.push_back({"default", "/s/volumes/default"});
  RemoteSetConfig r;
  r.name = "remote1";
  r.owner.bytes[0] = 2;
  r.origin_set = "cold";
  r.path = "/other store/volumes/cold";
  c.remote_sets.push_back(r);
  StoreConfig back;
  Status s = ParseStoreConfig(FormatStoreConfig(c), &back);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(back.remote_sets.size(), 1u);
  EXPECT_EQ(back.remote_sets[0].path, r.path);
  EXPECT_EQ(back.remote_sets[0].owner, r.owner);

  auto refused = [&](StoreConfig bad, const std::string& why) {
    StoreConfig out;
    Status st = ParseStoreConfig(FormatStoreConfig(bad), &out);
    EXPECT_FALSE(st.ok()) << why;
    EXPECT_TRUE(HasSubstr(st.message(), why)) << st.message();
  };
  StoreConfig own = c;
  own.remote_sets[0].owner = c.id;
  refused(own, "another store than this one");
  StoreConfig clash = c;
  clash.remote_sets[0].name = "default";
  refused(clash, "listed twice");
  StoreConfig twice = c;
  twice.remote_sets.push_back(r);
  twice.remote_sets[1].name = "remote2";
  refused(twice, "location of another remote set");
  StoreConfig relative = c;
  relative.remote_sets[0].path = "rel";
  refused(relative, "not absolute");
  StoreConfig parsed;
  EXPECT_TRUE(
      HasSubstr(ParseStoreConfig(FormatStoreConfig(c) + "remote_set = x y\n", &parsed).message(),
                "NAME OWNER ORIGIN PATH"));
}

}  // namespace
}  // namespace overtier
