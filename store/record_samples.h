// Sample records of every kind, with every field set to something
// distinctive (negative times included), so that a field lost or swapped
// by an encoder shows: for the records' tests and the fuzz targets' seeds
// (fuzz/make_seeds.cc), which start from the same well-formed encodings.
#ifndef OVERTIER_STORE_RECORD_SAMPLES_H_
#define OVERTIER_STORE_RECORD_SAMPLES_H_

#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "store/catalog_records.h"
#include "store/publication_format.h"

namespace overtier::samples {

// A 16-byte id whose bytes count up from `seed`.
template <typename T>
T Filled(uint8_t seed) {
  T id;
  for (int i = 0; i < 16; i++) id.bytes[i] = static_cast<uint8_t>(seed + i);
  return id;
}

inline CatalogMeta Meta() {
  CatalogMeta m;
  m.store_id = Filled<StoreId>(0x40);
  return m;
}

inline ImageRecord Image() { return {7, 2, 5, -1234567890123}; }

inline NodeRecord Node() {
  NodeRecord n;
  n.mode = S_IFREG | 0640;
  n.uid = 1000;
  n.gid = 1001;
  n.nlink = 3;
  n.size = 123456789012ull;
  n.rdev = 0;
  n.atime_ns = 1700000000123456789;
  n.mtime_ns = -5;
  n.ctime_ns = 1700000000000000001;
  n.xattrs = {{"user.a", "1"}, {"security.selinux", std::string("x\0y", 3)}, {"user.empty", ""}};
  n.has_content = true;
  n.content = Filled<Bfid>(0x10);
  return n;
}

inline DirentRecord Dirent() { return {42, DT_DIR}; }

inline FileRecord File() {
  FileRecord f;
  f.size = 10 << 20;
  FileCopy a, b;
  a.extents = {{0, 3, 4096, 1 << 20, Filled<Digest128>(1)},
               {2 << 20, 3, 4096 + (1 << 20), 8 << 20, Filled<Digest128>(2)}};  // hole at 1 MiB
  b.extents = {{0, 9, 8192, 10 << 20, Filled<Digest128>(3)}};
  f.copies = {a, b};
  return f;
}

inline ChunkRecord Chunk() { return {256 << 10, {{3, 4096}, {17, (uint64_t{5} << 32) + 8192}}}; }

inline VolumeRecord Volume() { return {"fast-ssd", VolumeState::kSealed, 256 << 20, 100 << 20}; }

inline MigrationRecord MigrationBarrier() {
  MigrationRecord m;
  m.flags = kMigArchived | kMigReleased;
  m.generation = 0xdeadbeef;
  m.archive_size = 5 << 20;
  m.residency = ResidencyKind::kBarrier;
  m.barrier = 4096;
  m.bfid = Filled<Bfid>(0x20);
  m.atime_ns = 11;
  m.mtime_ns = -12;
  m.archive_time_ns = 13;
  m.restore_time_ns = 14;
  return m;
}

inline MigrationRecord MigrationRanges() {
  MigrationRecord m = MigrationBarrier();
  m.flags = kMigArchived | kMigReleased | kMigDirty | kMigRestoreInProgress;
  m.residency = ResidencyKind::kRanges;
  m.barrier = 0;
  m.resident_ranges = {{0, 4096}, {8192, 4096}, {1 << 20, 1}};
  return m;
}

inline JobRecord Job() {
  JobRecord j;
  j.kind = JobKind::kRestore;
  j.state = JobState::kRunning;
  j.attempts = 2;
  j.progress = 4096;
  j.total = 1 << 20;
  j.created_ns = 100;
  j.updated_ns = 200;
  j.target = std::string("\x01\x02handle\0", 9);
  j.params = "range=0-4096";
  j.last_error = "EIO reading vv 3";
  return j;
}

// A manifest of two layers ("app" on "base") and `files` files of 5000
// bytes in container 3 of set "cold".
inline Publication PublicationOf(size_t files = 2) {
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
  for (size_t i = 0; i < files; i++) {
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
  return p;
}

}  // namespace overtier::samples

#endif  // OVERTIER_STORE_RECORD_SAMPLES_H_
