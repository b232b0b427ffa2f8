#include "image/oci.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "image/blob_digest.h"
#include "image/image_format.h"
#include "image/tar_source.h"

namespace overtier {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxMetadataBytes = size_t{16} << 20;  // index.json, manifests

// Access to the files of a layout, wherever it is.
class Layout {
 public:
  virtual ~Layout() = default;
  virtual Status ReadSmall(const std::string& rel, std::string* out) = 0;
  // Runs fn on a reader of the tar archive stored at rel.
  virtual Status WithTar(const std::string& rel, const std::function<Status(TarReader*)>& fn) = 0;
  virtual bool Exists(const std::string& rel) = 0;
  virtual const std::string& what() const = 0;
  // Calls fn with the bytes of the file at rel, in order, as stored.
  virtual Status ReadRaw(const std::string& rel,
                         const std::function<Status(std::string_view)>& fn) = 0;
};

// Relative paths inside a layout: no '..', nothing absolute.
Status CheckRel(const std::string& what, const std::string& rel, std::vector<std::string>* parts) {
  parts->clear();
  if (rel.empty() || rel[0] == '/') {
    return Status::InvalidArgument(what + ": path '" + rel + "' is not relative to the layout");
  }
  size_t i = 0;
  while (i <= rel.size()) {
    size_t j = rel.find('/', i);
    if (j == std::string::npos) j = rel.size();
    std::string c = rel.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      return Status::Errno(EPERM, what + ": path '" + rel + "' has a '..' component; refused");
    }
    parts->push_back(c);
  }
  if (parts->empty()) return Status::InvalidArgument(what + ": empty path");
  return Status::OK();
}

class DirLayout : public Layout {
 public:
  explicit DirLayout(std::string path) : what_(std::move(path)) {}
  ~DirLayout() override {
    if (fd_ >= 0) close(fd_);
  }
  Status Open() {
    fd_ = open(what_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) return Status::FromErrno("open OCI layout '" + what_ + "'");
    return Status::OK();
  }
  const std::string& what() const override { return what_; }

  // Opens rel under the layout without following any symlink. The file
  // is opened non-blocking, then checked to be a regular file: a FIFO
  // named like a blob would otherwise block the import in open(2) for
  // ever.
  Status OpenRel(const std::string& rel, int* out) {
    std::vector<std::string> parts;
    OVT_RETURN_IF_ERROR(CheckRel(what_, rel, &parts));
    int dir = fd_;
    for (size_t i = 0; i < parts.size(); i++) {
      bool last = i + 1 == parts.size();
      int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | (last ? O_NONBLOCK : O_DIRECTORY);
      int fd = openat(dir, parts[i].c_str(), flags);
      int err = errno;
      if (dir != fd_) close(dir);
      if (fd < 0) return Status::Errno(err, "OCI layout '" + what_ + "': open '" + rel + "'");
      dir = fd;
    }
    struct stat st;
    if (fstat(dir, &st) != 0 || !S_ISREG(st.st_mode)) {
      close(dir);
      return Status::InvalidArgument("OCI layout '" + what_ + "': '" + rel +
                                     "' is not a regular file");
    }
    const int fl = fcntl(dir, F_GETFL);
    if (fl < 0 || fcntl(dir, F_SETFL, fl & ~O_NONBLOCK) != 0) {  // reads as usual from here
      Status s = Status::FromErrno("OCI layout '" + what_ + "': '" + rel + "'");
      close(dir);
      return s;
    }
    *out = dir;
    return Status::OK();
  }

  Status ReadSmall(const std::string& rel, std::string* out) override {
    int fd;
    OVT_RETURN_IF_ERROR(OpenRel(rel, &fd));
    out->clear();
    char buf[65536];
    for (;;) {
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        Status s = Status::FromErrno("OCI layout '" + what_ + "': read '" + rel + "'");
        close(fd);
        return s;
      }
      if (n == 0) break;
      out->append(buf, n);
      if (out->size() > kMaxMetadataBytes) {
        close(fd);
        return Status::Errno(EFBIG, "OCI layout '" + what_ + "': '" + rel + "' is too large");
      }
    }
    close(fd);
    return Status::OK();
  }

  Status WithTar(const std::string& rel, const std::function<Status(TarReader*)>& fn) override {
    int fd;
    OVT_RETURN_IF_ERROR(OpenRel(rel, &fd));
    std::unique_ptr<TarReader> tar;
    Status s = TarReader::OpenFd(fd, what_ + "/" + rel, &tar);
    if (s.ok()) s = fn(tar.get());
    tar.reset();
    close(fd);
    return s;
  }

  bool Exists(const std::string& rel) override {
    int fd;
    if (!OpenRel(rel, &fd).ok()) return false;
    close(fd);
    return true;
  }

  Status ReadRaw(const std::string& rel,
                 const std::function<Status(std::string_view)>& fn) override {
    int fd;
    OVT_RETURN_IF_ERROR(OpenRel(rel, &fd));
    std::string buf(size_t{1} << 20, '\0');
    Status s;
    for (;;) {
      ssize_t n = read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) s = Status::FromErrno("OCI layout '" + what_ + "': read '" + rel + "'");
      if (n <= 0) break;
      s = fn(std::string_view(buf.data(), static_cast<size_t>(n)));
      if (!s.ok()) break;
    }
    close(fd);
    return s;
  }

 private:
  std::string what_;
  int fd_ = -1;
};

std::string Joined(const std::vector<std::string>& parts) {
  std::string s;
  for (const std::string& p : parts) s += (s.empty() ? "" : "/") + p;
  return s;
}

// A layout (or docker save output) packed in a tar. Each file is found by
// scanning the archive from the start (skipping data is a seek for an
// uncompressed archive, which these are in practice).
class TarLayout : public Layout {
 public:
  explicit TarLayout(std::string path) : what_(std::move(path)) {}
  const std::string& what() const override { return what_; }

  // Calls fn with the reader positioned on the entry named rel (following
  // symlinks and hard links inside the archive).
  Status Find(const std::string& rel_in, const std::function<Status(TarReader*)>& fn) {
    std::string rel = rel_in;
    for (int hop = 0; hop < 8; hop++) {
      std::vector<std::string> want;
      OVT_RETURN_IF_ERROR(CheckRel(what_, rel, &want));
      int fd = open(what_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return Status::FromErrno("open '" + what_ + "'");
      std::unique_ptr<TarReader> tar;
      Status s = TarReader::OpenFd(fd, what_, &tar);
      std::string next;
      bool found = false;
      TarEntry e;
      std::vector<std::string> parts;
      while (s.ok()) {
        bool eof = false;
        s = tar->Next(&e, &eof);
        if (!s.ok() || eof) break;
        if (!NormalizeTarPath(e.path, &parts).ok() || parts != want) continue;
        found = true;
        if (!e.hardlink.empty()) {
          next = e.hardlink;
        } else if ((e.mode & S_IFMT) == S_IFLNK) {
          // Relative to the link's directory (docker save links duplicate
          // layers as ../<id>/layer.tar).
          std::vector<std::string> dir(parts.begin(), parts.end() - 1);
          std::string joined = Joined(dir) + "/" + e.symlink;
          if (!e.symlink.empty() && e.symlink[0] == '/') joined = e.symlink.substr(1);
          std::vector<std::string> resolved;
          Status ns = NormalizeTarPath(joined, &resolved);
          if (!ns.ok()) {
            s = Status::Errno(ns.err(), what_ + ": '" + rel + "': " + ns.message());
            break;
          }
          next = Joined(resolved);
        } else if ((e.mode & S_IFMT) == S_IFREG) {
          s = fn(tar.get());
        } else {
          s = Status::InvalidArgument(what_ + ": '" + rel + "' is not a regular file");
        }
        break;
      }
      tar.reset();
      close(fd);
      OVT_RETURN_IF_ERROR(s);
      if (!found) return Status::NotFound(what_ + ": no '" + rel + "' in the archive");
      if (next.empty()) return Status::OK();
      rel = next;
    }
    return Status::Errno(ELOOP, what_ + ": too many links resolving '" + rel_in + "'");
  }

  Status ReadSmall(const std::string& rel, std::string* out) override {
    return Find(rel, [&](TarReader* t) { return t->ReadAll(out, kMaxMetadataBytes); });
  }

  Status WithTar(const std::string& rel, const std::function<Status(TarReader*)>& fn) override {
    return Find(rel, [&](TarReader* outer) -> Status {
      std::unique_ptr<TarReader> inner;
      OVT_RETURN_IF_ERROR(TarReader::OpenEntry(outer, what_ + ":" + rel, &inner));
      return fn(inner.get());
    });
  }

  bool Exists(const std::string& rel) override {
    return Find(rel, [](TarReader*) { return Status::OK(); }).ok();
  }

  Status ReadRaw(const std::string& rel,
                 const std::function<Status(std::string_view)>& fn) override {
    return Find(rel, [&](TarReader* t) {
      return t->ReadData([&](uint64_t, std::string_view data) { return fn(data); });
    });
  }

 private:
  std::string what_;
};

Status ParseJson(const std::string& what, const std::string& text, json* out) {
  *out = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (out->is_discarded()) return Status::Corruption(what + ": not valid JSON");
  return Status::OK();
}

// "sha256:abc..." -> "blobs/sha256/abc...".
Status BlobPath(const std::string& what, const json& desc, std::string* out) {
  if (!desc.is_object() || !desc.contains("digest") || !desc["digest"].is_string()) {
    return Status::Corruption(what + ": descriptor without a digest");
  }
  std::string d = desc["digest"].get<std::string>();
  size_t colon = d.find(':');
  auto ok = [](const std::string& s) {
    if (s.empty() || s == "." || s == "..") return false;
    for (char c : s) {
      if (!(isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '.' || c == '_' ||
            c == '-' || c == '=')) {
        return false;
      }
    }
    return true;
  };
  if (colon == std::string::npos || !ok(d.substr(0, colon)) || !ok(d.substr(colon + 1))) {
    return Status::Corruption(what + ": malformed digest '" + d + "'");
  }
  *out = "blobs/" + d.substr(0, colon) + "/" + d.substr(colon + 1);
  return Status::OK();
}

// Checks that the blob at rel has the digest its name says (OCI names
// every blob so); a file of a docker-save archive ("ID/layer.tar") names
// none and is not checked.
Status VerifyBlob(Layout* layout, const std::string& rel) {
  std::string alg, hex;
  if (!DigestOfBlobPath(rel, &alg, &hex)) return Status::OK();
  const std::string what = layout->what() + ": " + rel;
  std::unique_ptr<BlobHasher> h;
  Status s = BlobHasher::Create(alg, &h);
  if (!s.ok()) return Status::Errno(s.err(), what + ": " + s.message());
  OVT_RETURN_IF_ERROR(layout->ReadRaw(rel, [&](std::string_view data) {
    h->Update(data);
    return Status::OK();
  }));
  return CheckBlobDigest(what, alg, hex, h->FinishHex());
}

// The same for a small blob already read (a manifest, an index).
Status VerifySmallBlob(const std::string& what, const std::string& rel, std::string_view text) {
  std::string alg, hex;
  if (!DigestOfBlobPath(rel, &alg, &hex)) return Status::OK();
  std::unique_ptr<BlobHasher> h;
  Status s = BlobHasher::Create(alg, &h);
  if (!s.ok()) return Status::Errno(s.err(), what + ": " + rel + ": " + s.message());
  h->Update(text);
  return CheckBlobDigest(what + ": " + rel, alg, hex, h->FinishHex());
}

std::string HostArch() {
  struct utsname u;
  if (uname(&u) != 0) return "";
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m.starts_with("arm")) return "arm";
  if (m == "i686" || m == "i386") return "386";
  return m;
}

bool IsIndexType(const std::string& t) {
  return t == "application/vnd.oci.image.index.v1+json" ||
         t == "application/vnd.docker.distribution.manifest.list.v2+json";
}

// j[key] if j is an object and that a string, else "". (Not json::value,
// which throws on a value of another type: a manifest is input.)
std::string StringField(const json& j, const char* key) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return "";
}

std::string MediaType(const json& j) { return StringField(j, "mediaType"); }

// From an index (parsed), the manifest's layers.
Status LayersFromIndex(Layout* layout, const json& index, int depth,
                       std::vector<std::string>* layers) {
  const std::string& what = layout->what();
  if (depth > 4) return Status::Corruption(what + ": image indexes nested too deep");
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array()) {
    return Status::Corruption(what + ": index without a manifests list");
  }
  const json* chosen = nullptr;
  std::string arch = HostArch();
  for (const json& m : index["manifests"]) {
    if (!m.is_object()) continue;
    const json* p = m.contains("platform") ? &m["platform"] : nullptr;
    if (p != nullptr && p->is_object()) {
      std::string os = StringField(*p, "os");
      std::string a = StringField(*p, "architecture");
      if (os == "unknown") continue;  // attestations
      if (os == "linux" && a == arch) {
        chosen = &m;
        break;
      }
    }
    if (chosen == nullptr) chosen = &m;
  }
  if (chosen == nullptr) return Status::NotFound(what + ": the index lists no image manifest");
  std::string blob, text;
  OVT_RETURN_IF_ERROR(BlobPath(what, *chosen, &blob));
  OVT_RETURN_IF_ERROR(layout->ReadSmall(blob, &text));
  OVT_RETURN_IF_ERROR(VerifySmallBlob(what, blob, text));
  json m;
  OVT_RETURN_IF_ERROR(ParseJson(what + ": " + blob, text, &m));
  std::string type = MediaType(*chosen);
  if (IsIndexType(type) || IsIndexType(MediaType(m))) {
    return LayersFromIndex(layout, m, depth + 1, layers);
  }
  if (!m.is_object() || !m.contains("layers") || !m["layers"].is_array()) {
    return Status::Corruption(what + ": manifest " + blob + " has no layers list");
  }
  for (const json& l : m["layers"]) {
    std::string p;
    OVT_RETURN_IF_ERROR(BlobPath(what + ": manifest " + blob, l, &p));
    layers->push_back(p);
  }
  return Status::OK();
}

Status DockerLayers(Layout* layout, std::vector<std::string>* layers) {
  const std::string& what = layout->what();
  std::string text;
  OVT_RETURN_IF_ERROR(layout->ReadSmall("manifest.json", &text));
  json m;
  OVT_RETURN_IF_ERROR(ParseJson(what + ": manifest.json", text, &m));
  if (!m.is_array() || m.empty()) {
    return Status::Corruption(what + ": manifest.json is not a non-empty list of images");
  }
  if (m.size() > 1) {
    return Status::InvalidArgument(what + ": the archive holds " + std::to_string(m.size()) +
                                   " images; save one image per archive");
  }
  const json& img = m[0];
  if (!img.is_object() || !img.contains("Layers") || !img["Layers"].is_array()) {
    return Status::Corruption(what + ": manifest.json has no Layers list");
  }
  for (const json& l : img["Layers"]) {
    if (!l.is_string()) return Status::Corruption(what + ": manifest.json: a layer is not a path");
    std::vector<std::string> parts;
    OVT_RETURN_IF_ERROR(CheckRel(what + ": manifest.json", l.get<std::string>(), &parts));
    layers->push_back(Joined(parts));
  }
  return Status::OK();
}

Status OpenLayout(const std::string& source, std::unique_ptr<Layout>* out) {
  struct stat st;
  if (stat(source.c_str(), &st) != 0) return Status::FromErrno("source '" + source + "'");
  if (S_ISDIR(st.st_mode)) {
    auto d = std::make_unique<DirLayout>(source);
    OVT_RETURN_IF_ERROR(d->Open());
    *out = std::move(d);
  } else {
    *out = std::make_unique<TarLayout>(source);
  }
  return Status::OK();
}

Status Layers(Layout* layout, SourceKind kind, std::vector<std::string>* layers) {
  layers->clear();
  if (kind == SourceKind::kDockerSave) return DockerLayers(layout, layers);
  std::string text;
  OVT_RETURN_IF_ERROR(layout->ReadSmall("index.json", &text));
  json index;
  OVT_RETURN_IF_ERROR(ParseJson(layout->what() + ": index.json", text, &index));
  return LayersFromIndex(layout, index, 0, layers);
}

bool IsHex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Whether a first entry looks like image metadata rather than a file tree.
bool LooksLikeImageArchive(const std::vector<std::string>& p) {
  if (p.empty()) return false;
  const std::string& c = p[0];
  if (c == "manifest.json" || c == "index.json" || c == "oci-layout" || c == "repositories" ||
      c == "blobs") {
    return true;
  }
  if (c.size() >= 64 && IsHex(std::string_view(c).substr(0, 64))) return true;
  return false;
}

}  // namespace

Status ProbeArchive(const std::string& path, SourceKind* kind) {
  *kind = SourceKind::kTar;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open '" + path + "'");
  std::unique_ptr<TarReader> tar;
  Status s = TarReader::OpenFd(fd, path, &tar);
  TarEntry e;
  bool eof = false;
  std::vector<std::string> parts;
  if (s.ok()) s = tar->Next(&e, &eof);
  if (s.ok() && !eof && NormalizeTarPath(e.path, &parts).ok() && LooksLikeImageArchive(parts)) {
    // Only now read all names (a plain file tree never pays for this).
    std::set<std::string> top;
    do {
      if (NormalizeTarPath(e.path, &parts).ok() && parts.size() == 1) top.insert(parts[0]);
      s = tar->Next(&e, &eof);
    } while (s.ok() && !eof);
    if (s.ok()) {
      if (top.count("manifest.json")) {
        *kind = SourceKind::kDockerSave;
      } else if (top.count("index.json") && top.count("oci-layout")) {
        *kind = SourceKind::kOciLayout;
      }
    }
  }
  tar.reset();
  close(fd);
  return s;
}

Status ReadOciLayers(const std::string& source, SourceKind kind, std::vector<std::string>* layers) {
  std::unique_ptr<Layout> layout;
  OVT_RETURN_IF_ERROR(OpenLayout(source, &layout));
  return Layers(layout.get(), kind, layers);
}

Status ImportOciImage(Store* store, std::string_view name, const std::string& source,
                      SourceKind kind, const ImportOptions& options, ImportResult* result) {
  std::unique_ptr<Layout> layout;
  OVT_RETURN_IF_ERROR(OpenLayout(source, &layout));
  std::vector<std::string> layers;
  OVT_RETURN_IF_ERROR(Layers(layout.get(), kind, &layers));
  if (layers.empty()) return Status::InvalidArgument(source + ": the image has no layers");
  // Every layer's digest before anything is stored: a damaged archive is
  // refused whole.
  for (const std::string& l : layers) OVT_RETURN_IF_ERROR(VerifyBlob(layout.get(), l));
  std::vector<std::string> names;
  for (size_t i = 1; i <= layers.size(); i++) {
    names.push_back(LayerImageName(name, i, layers.size()));
  }
  OVT_RETURN_IF_ERROR(CheckNewNames(store, names, options.replace));
  uint64_t parent = 0;
  if (!options.parent.empty()) OVT_RETURN_IF_ERROR(ResolveParent(store, options.parent, &parent));
  ContentWriter w(store);
  DiscardUnlessKept discard(&w);
  std::vector<std::pair<std::string, ImageRecord>> records;
  for (size_t i = 0; i < layers.size(); i++) {
    ImageBuilder b(store, &w, &result->counters);
    OVT_RETURN_IF_ERROR(b.Begin());
    OVT_RETURN_IF_ERROR(layout->WithTar(layers[i], [&](TarReader* t) {
      return ImportTarLayer(&b, &w, t, options, &result->counters);
    }));
    ImageRecord rec;
    OVT_RETURN_IF_ERROR(FinishLayer(&b, parent, &rec));
    parent = rec.image_id;
    records.emplace_back(names[i], rec);
    result->image_ids.push_back(rec.image_id);
  }
  OVT_RETURN_IF_ERROR(PublishImages(store, &w, records, options.replace));
  discard.Keep();
  result->counters.bytes_stored = w.stats().bytes_stored;
  result->images = names;
  return Status::OK();
}

}  // namespace overtier
