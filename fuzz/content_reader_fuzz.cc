// Fuzz target: reading archived content back from damaged containers
// (store/content_reader.h), the path every image read and every restore
// takes.
//
// The promise is "wrong data is never returned": a chunk is checked
// against the catalog's digest before any byte of it is handed out, and a
// copy that fails gives way to the next. Here a store keeps one file in
// two copies (volume sets a and b, containers with chunks and holes); each
// input damages the containers on disk, then a fresh ContentReader reads
// the file whole and in pieces. Input: a flags byte, then patches of five
// bytes (a 32-bit offset into the concatenated container files, a byte to
// XOR there). Flags bit 0: patch both copies (else only set a's).
// Properties: with one copy intact every read returns the file's bytes
// exactly; with both damaged a read returns them exactly or fails, never
// other bytes. The containers are put back after each input.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "store/content_reader.h"
#include "store/content_writer.h"
#include "store/store.h"

namespace {

using overtier::Status;

constexpr uint64_t kChunk = 16 << 10;

struct Scratch {
  std::string dir;
  std::unique_ptr<overtier::Store> store;
  std::string content;
  overtier::FileRecord file;
  overtier::Bfid bfid;
  // Every container file of each set, and its bytes as written.
  std::map<std::string, std::string> pristine_a, pristine_b;
};

Scratch* scratch = nullptr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  FUZZ_CHECK(out.good(), "a container file put back");
}

std::map<std::string, std::string> Snapshot(const std::string& folder) {
  std::map<std::string, std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(folder))
    if (e.is_regular_file()) files[e.path().string()] = ReadAll(e.path().string());
  return files;
}

void Setup() {
  scratch = new Scratch;
  scratch->dir = overtier::fuzz::ScratchDir("reader");
  overtier::StoreInitOptions o;
  o.sets = {{"a", scratch->dir + "/a"}, {"b", scratch->dir + "/b"}};
  o.copies = 2;
  o.chunk_size = kChunk;
  Status s = overtier::Store::Init(scratch->dir + "/store", o, &scratch->store);
  if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
  FUZZ_CHECK(s.ok(), "a store with two sets");
  // Five chunks and a short tail; the third chunk zeros (a hole).
  std::string& c = scratch->content;
  uint32_t x = 2463534242u;
  for (uint64_t i = 0; i < 5 * kChunk + 1000; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c.push_back(i / kChunk == 2 ? '\0' : static_cast<char>(x));
  }
  overtier::ContentWriter w(scratch->store.get());
  w.BeginFile();
  FUZZ_CHECK(w.Write(0, c).ok(), "the file written");
  FUZZ_CHECK(w.EndFile(c.size(), &scratch->file).ok(), "the file ended");
  overtier::Catalog::Batch b(scratch->store->catalog());
  FUZZ_CHECK(w.Finish(&b).ok() && b.Commit().ok(), "the file committed");
  FUZZ_CHECK(scratch->file.copies.size() == 2, "two copies");
  scratch->bfid.bytes[0] = 1;
  scratch->pristine_a = Snapshot(scratch->dir + "/a");
  scratch->pristine_b = Snapshot(scratch->dir + "/b");
  std::atexit([] {
    scratch->store.reset();
    std::error_code ec;
    std::filesystem::remove_all(scratch->dir, ec);
  });
}

// Applies the input's patches to `files` (their bytes, concatenated).
bool Patch(std::map<std::string, std::string>* files, const uint8_t* p, size_t n) {
  uint64_t total = 0;
  for (const auto& [path, bytes] : *files) total += bytes.size();
  if (total == 0) return false;
  bool changed = false;
  for (; n >= 5; p += 5, n -= 5) {
    uint64_t off =
        (uint64_t{p[0]} | uint64_t{p[1]} << 8 | uint64_t{p[2]} << 16 | uint64_t{p[3]} << 24) %
        total;
    for (auto& [path, bytes] : *files) {
      if (off < bytes.size()) {
        bytes[off] = static_cast<char>(bytes[off] ^ p[4]);
        changed |= p[4] != 0;
        break;
      }
      off -= bytes.size();
    }
  }
  return changed;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (scratch == nullptr) Setup();
  if (size == 0) return 0;
  const bool both = data[0] & 1;
  std::map<std::string, std::string> a = scratch->pristine_a, b = scratch->pristine_b;
  Patch(&a, data + 1, size - 1);
  if (both) Patch(&b, data + 1, size - 1);
  for (const auto& [path, bytes] : a) WriteAll(path, bytes);
  for (const auto& [path, bytes] : b) WriteAll(path, bytes);

  {
    // A fresh reader: no chunk cached from an earlier input.
    overtier::ContentReader reader(scratch->store.get());
    const std::string& want = scratch->content;
    const uint64_t ranges[][2] = {{0, want.size()},
                                  {kChunk - 7, 3 * kChunk},
                                  {2 * kChunk + 5, 100},
                                  {want.size() - 1500, 1500}};
    for (const auto& r : ranges) {
      std::string buf(r[1], '\xee');
      size_t got = 0;
      Status s = reader.Read(scratch->bfid, scratch->file, r[0], r[1], buf.data(), &got, "fuzzed");
      if (!both) {
        if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str());
        FUZZ_CHECK(s.ok(), "with one copy intact, a read succeeds");
      }
      if (s.ok()) {
        FUZZ_CHECK(got == r[1], "a read returns every byte asked for");
        FUZZ_CHECK(buf == want.substr(r[0], r[1]), "a read returns the file's bytes, never others");
      }
    }
  }

  for (const auto& [path, bytes] : scratch->pristine_a) WriteAll(path, bytes);
  for (const auto& [path, bytes] : scratch->pristine_b) WriteAll(path, bytes);
  return 0;
}
