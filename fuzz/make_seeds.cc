// Writes the seed inputs of the fuzz targets whose inputs are binary
// formats (fuzz/corpus/catalog_records, vv_container, vv_recovery,
// publication): real encodings made by the encoders and writers overtier
// uses, every field set, so that the fuzzers start from inputs that get
// past the checksums.
// Run again when a format changes:
//
//   make_seeds fuzz/corpus
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "fuzz/vv_container.h"
#include "store/catalog_records.h"
#include "store/local_volume.h"
#include "store/publication_format.h"
#include "store/volume.h"
#include "store/vv_writer.h"

namespace {

using namespace overtier;

template <typename T>
T Filled(uint8_t first) {
  T t;
  for (size_t i = 0; i < 16; i++) t.bytes[i] = static_cast<uint8_t>(first + i);
  return t;
}

bool Write(const std::string& dir, const char* name, uint8_t type, const std::string& value) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out << static_cast<char>(type) << value;
  return out.good();
}

// catalog_records: the type byte catalog_records_fuzz switches on, then a
// value.
bool CatalogSeeds(const std::string& dir) {
  CatalogMeta meta;
  meta.store_id = Filled<StoreId>(0x40);

  NodeRecord file;
  file.mode = S_IFREG | 0640;
  file.uid = 1000;
  file.gid = 1001;
  file.nlink = 3;
  file.size = 123456789012ull;
  file.atime_ns = 1700000000123456789;
  file.mtime_ns = -5;
  file.ctime_ns = 1700000000000000001;
  file.xattrs = {{"user.a", "1"}, {"security.selinux", std::string("x\0y", 3)}, {"user.empty", ""}};
  file.has_content = true;
  file.content = Filled<Bfid>(0x10);
  NodeRecord link;
  link.mode = S_IFLNK | 0777;
  link.nlink = 1;
  link.size = 6;
  link.symlink_target = "../etc";
  NodeRecord dev;
  dev.mode = S_IFCHR | 0600;
  dev.nlink = 1;
  dev.rdev = (uint64_t{1} << 8) | 3;

  FileRecord content;
  content.size = 10 << 20;
  FileCopy a, b;
  a.extents = {{0, 3, 4096, 1 << 20, Filled<Digest128>(1)},
               {2 << 20, 3, 4096 + (1 << 20), 8 << 20, Filled<Digest128>(2)}};
  b.extents = {{0, 9, 8192, 10 << 20, Filled<Digest128>(3)}};
  content.copies = {a, b};

  MigrationRecord barrier;
  barrier.flags = kMigArchived | kMigReleased;
  barrier.generation = 0xdeadbeef;
  barrier.archive_size = 5 << 20;
  barrier.barrier = 4096;
  barrier.bfid = Filled<Bfid>(0x20);
  barrier.atime_ns = 11;
  barrier.mtime_ns = -12;
  barrier.archive_time_ns = 13;
  barrier.restore_time_ns = 14;
  MigrationRecord ranges = barrier;
  ranges.flags = kMigArchived | kMigReleased | kMigDirty | kMigRestoreInProgress;
  ranges.residency = ResidencyKind::kRanges;
  ranges.barrier = 0;
  ranges.resident_ranges = {{0, 4096}, {8192, 4096}, {1 << 20, 1}};

  JobRecord job;
  job.kind = JobKind::kRestore;
  job.state = JobState::kRunning;
  job.attempts = 2;
  job.progress = 4096;
  job.total = 1 << 20;
  job.created_ns = 100;
  job.updated_ns = 200;
  job.target = std::string("\x01\x02handle\0", 9);
  job.params = "ranges";
  job.last_error = "EIO reading vv 3";

  VolumeRecord remote{"shared", VolumeState::kRemote, 256 << 20, 100 << 20, 77};

  bool ok =
      Write(dir, "meta", 0, EncodeRecord(meta)) &&
      Write(dir, "image", 1, EncodeRecord(ImageRecord{7, 2, 5, -1234567890123})) &&
      Write(dir, "node-file", 2, EncodeRecord(file)) &&
      Write(dir, "node-symlink", 2, EncodeRecord(link)) &&
      Write(dir, "node-device", 2, EncodeRecord(dev)) &&
      Write(dir, "dirent", 3, EncodeRecord(DirentRecord{42, DT_DIR})) &&
      Write(dir, "file", 4, EncodeRecord(content)) &&
      Write(dir, "chunk", 5,
            EncodeRecord(ChunkRecord{256 << 10, {{3, 4096}, {17, (uint64_t{5} << 32) + 8192}}})) &&
      Write(dir, "volume", 6,
            EncodeRecord(VolumeRecord{"fast-ssd", VolumeState::kSealed, 256 << 20, 100 << 20})) &&
      Write(dir, "volume-remote", 6, EncodeRecord(remote)) &&
      Write(dir, "migration-barrier", 7, EncodeRecord(barrier)) &&
      Write(dir, "migration-ranges", 7, EncodeRecord(ranges)) &&
      Write(dir, "job", 8, EncodeRecord(job));
  return ok;
}

// vv_container: whole containers.
// scratch: an empty folder for the set the container is written in.
Status WriteSeed(const std::string& scratch, const std::string& out, int records, bool seal) {
  std::unique_ptr<VolumeSet> set;
  LocalVolumeOptions options;
  Status s = OpenLocalVolumeSetAt(scratch, fuzz::kSetName, options, &set);
  if (!s.ok()) return s;
  VvWriterOptions wo;
  wo.seal_size = kVvMinSealSize * 8;
  std::unique_ptr<VvWriter> w;
  if (!(s = VvWriter::Create(set.get(), fuzz::kStoreId, fuzz::kVvId, wo, &w)).ok()) return s;
  for (int i = 0; i < records; i++) {
    std::string payload(static_cast<size_t>(i * 1000 + 1), static_cast<char>('a' + i));
    Id128 key{};
    key[0] = static_cast<uint8_t>(i);
    RecordLocation loc;
    const auto kind = i % 2 ? RecordKind::kChunk : RecordKind::kFileData;
    if (!(s = w->Append(kind, key, static_cast<uint64_t>(i) * 4096, payload, &loc)).ok()) return s;
  }
  if (!(s = seal ? w->Seal() : w->Sync()).ok()) return s;
  w.reset();
  std::unique_ptr<VolumeReader> r;
  if (!(s = set->Open(fuzz::kVvId, &r)).ok()) return s;
  std::string bytes(r->Size(), '\0');
  if (!(s = r->ReadAt(0, bytes.size(), bytes.data())).ok()) return s;
  std::ofstream(out, std::ios::binary) << bytes;
  return Status::OK();
}

bool VvSeeds(const std::string& dir) {
  char tmpl[] = "/tmp/ovt-seeds-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return false;
  struct Seed {
    const char* name;
    int records;
    bool seal;
  } seeds[] = {{"empty-sealed", 0, true},
               {"one-sealed", 1, true},
               {"three-sealed", 3, true},
               {"three-unsealed", 3, false},
               {"one-unsealed", 1, false}};
  bool ok = true;
  for (const Seed& seed : seeds) {
    Status s = WriteSeed(std::string(tmpl) + "/" + seed.name, dir + "/" + seed.name, seed.records,
                         seed.seal);
    if (!s.ok()) {
      std::fprintf(stderr, "make_seeds: %s: %s\n", seed.name, s.ToString().c_str());
      ok = false;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(tmpl, ec);
  return ok;
}

// publication: the piece-count byte publication_fuzz reads (one piece),
// then a manifest of two layers and a few files.
bool PublicationSeeds(const std::string& dir) {
  Publication p;
  p.owner.bytes[0] = 7;
  p.origin_set = "cold";
  p.published_ns = 1234567890;
  PublishedLayer top, base;
  top.name = "app";
  top.image = ImageRecord{9, 1, 4, 100};
  base.name = "base";
  base.image = ImageRecord{4, 1, 0, 50};
  for (PublishedLayer* l : {&top, &base}) {
    NodeRecord root;
    root.mode = S_IFDIR | 0755;
    root.nlink = 2;
    l->nodes.emplace_back(1, root);
  }
  for (uint64_t i = 0; i < 3; i++) {
    NodeRecord f;
    f.mode = S_IFREG | 0644;
    f.nlink = 1;
    f.size = 5000;
    f.has_content = true;
    f.content.bytes[0] = static_cast<uint8_t>(i + 1);
    top.nodes.emplace_back(2 + i, f);
    top.dirents.push_back(PublishedDirent{1, "f" + std::to_string(i), DirentRecord{2 + i, DT_REG}});
    FileRecord fr;
    fr.size = 5000;
    Extent e;
    e.vv_id = 3;
    e.vv_offset = 4096 * (i + 1);
    e.length = 5000;
    fr.copies.push_back(FileCopy{{e}});
    p.files[f.content] = fr;
  }
  p.layers = {top, base};
  p.volumes[3] = 1 << 20;
  std::vector<std::string> pieces;
  if (!EncodePublication(p, 1 << 20, &pieces).ok() || pieces.size() != 1) return false;
  std::ofstream out(dir + "/two-layers", std::ios::binary);
  out << '\0' << pieces[0];
  return out.good();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds CORPUS_DIR (fuzz/corpus)\n");
    return 2;
  }
  const std::string corpus = argv[1];
  bool ok = CatalogSeeds(corpus + "/catalog_records") && VvSeeds(corpus + "/vv_container") &&
            VvSeeds(corpus + "/vv_recovery") && PublicationSeeds(corpus + "/publication");
  if (!ok) {
    std::fprintf(stderr, "make_seeds: cannot write the seeds in %s\n", corpus.c_str());
    return 1;
  }
  return 0;
}
