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
#include "store/record_samples.h"
#include "store/volume.h"
#include "store/vv_writer.h"

namespace {

using namespace overtier;

bool Write(const std::string& dir, const char* name, uint8_t type, const std::string& value) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out << static_cast<char>(type) << value;
  return out.good();
}

// catalog_records: the type byte catalog_records_fuzz switches on, then a
// value.
bool CatalogSeeds(const std::string& dir) {
  // The records' test samples (store/record_samples.h), and the kinds of
  // node and volume they do not show.
  NodeRecord link;
  link.mode = S_IFLNK | 0777;
  link.nlink = 1;
  link.size = 6;
  link.symlink_target = "../etc";
  NodeRecord dev;
  dev.mode = S_IFCHR | 0600;
  dev.nlink = 1;
  dev.rdev = (uint64_t{1} << 8) | 3;
  VolumeRecord remote{"shared", VolumeState::kRemote, 256 << 20, 100 << 20, 77};
  return Write(dir, "meta", 0, EncodeRecord(samples::Meta())) &&
         Write(dir, "image", 1, EncodeRecord(samples::Image())) &&
         Write(dir, "node-file", 2, EncodeRecord(samples::Node())) &&
         Write(dir, "node-symlink", 2, EncodeRecord(link)) &&
         Write(dir, "node-device", 2, EncodeRecord(dev)) &&
         Write(dir, "dirent", 3, EncodeRecord(samples::Dirent())) &&
         Write(dir, "file", 4, EncodeRecord(samples::File())) &&
         Write(dir, "chunk", 5, EncodeRecord(samples::Chunk())) &&
         Write(dir, "volume", 6, EncodeRecord(samples::Volume())) &&
         Write(dir, "volume-remote", 6, EncodeRecord(remote)) &&
         Write(dir, "migration-barrier", 7, EncodeRecord(samples::MigrationBarrier())) &&
         Write(dir, "migration-ranges", 7, EncodeRecord(samples::MigrationRanges())) &&
         Write(dir, "job", 8, EncodeRecord(samples::Job()));
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
// then a manifest of two layers and three files.
bool PublicationSeeds(const std::string& dir) {
  std::vector<std::string> pieces;
  if (!EncodePublication(samples::PublicationOf(3), 1 << 20, &pieces).ok() || pieces.size() != 1)
    return false;
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
