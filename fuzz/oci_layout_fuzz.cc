// Fuzz target: importing an image from an OCI image layout directory
// (image/oci.h): index.json, nested indexes, manifests and layer blobs.
//
// A layout names every blob by the SHA-256 of its bytes, and import checks
// them first: a fuzzer that cannot compute digests would never get past
// that check. So the input is a list of parts, separated by kSeparator:
// part 0 is index.json, part N (N >= 1) a blob, written as
// blobs/sha256/<its digest>. In a part, "@N" (one digit, N greater than
// the part's own number) stands for the digest of part N; parts are
// hashed from the last one up, so a manifest can name its layers and an
// index its manifests. (`tar_import` reaches the same parser through an
// OCI tar, but its mutations rarely keep a valid tar around valid JSON.)
//
// Properties: a refused import says why, naming the layout; one that
// succeeds created at least one image and leaves a store that `overtier
// fsck --quick` finds no damage in.
//
// One store serves many inputs, each imported under a new name:
// fuzz/scratch_store.h.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "fuzz/scratch_store.h"
#include "image/blob_digest.h"
#include "image/import.h"
#include "store/store.h"

namespace {

constexpr int kInputsPerStore = 200;
constexpr std::string_view kSeparator = "\n--blob--\n";
constexpr size_t kMaxParts = 10;  // "@N" names parts 1..9

std::vector<std::string> SplitParts(std::string_view in) {
  std::vector<std::string> parts;
  while (parts.size() + 1 < kMaxParts) {
    const size_t at = in.find(kSeparator);
    if (at == std::string_view::npos) break;
    parts.emplace_back(in.substr(0, at));
    in.remove_prefix(at + kSeparator.size());
  }
  parts.emplace_back(in);
  return parts;
}

std::string Sha256Hex(std::string_view data) {
  std::unique_ptr<overtier::BlobHasher> h;
  FUZZ_CHECK(overtier::BlobHasher::Create("sha256", &h).ok(), "a SHA-256 hasher");
  h->Update(data);
  return h->FinishHex();
}

// Replaces "@N" for N > self by hex[N].
std::string Substitute(const std::string& part, size_t self, const std::vector<std::string>& hex) {
  std::string out;
  out.reserve(part.size());
  for (size_t i = 0; i < part.size(); ++i) {
    if (part[i] == '@' && i + 1 < part.size() && part[i + 1] >= '1' && part[i + 1] <= '9') {
      const size_t n = static_cast<size_t>(part[i + 1] - '0');
      if (n > self && n < hex.size()) {
        out += hex[n];
        ++i;
        continue;
      }
    }
    out += part[i];
  }
  return out;
}

void WriteFile(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  FUZZ_CHECK(out.good(), "a layout file written");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto* scratch = overtier::fuzz::ScratchStore::Instance("oci", kInputsPerStore);
  overtier::Store* store = scratch->Next();
  const std::string name = "fuzz" + std::to_string(scratch->inputs());

  std::vector<std::string> parts =
      SplitParts(std::string_view(reinterpret_cast<const char*>(data), size));
  std::vector<std::string> hex(parts.size());
  for (size_t i = parts.size(); i-- > 0;) {
    parts[i] = Substitute(parts[i], i, hex);
    if (i > 0) hex[i] = Sha256Hex(parts[i]);
  }

  const std::string layout = scratch->dir() + "/layout";
  std::error_code ec;
  std::filesystem::remove_all(layout, ec);
  std::filesystem::create_directories(layout + "/blobs/sha256");
  WriteFile(layout + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  WriteFile(layout + "/index.json", parts[0]);
  for (size_t i = 1; i < parts.size(); ++i) WriteFile(layout + "/blobs/sha256/" + hex[i], parts[i]);

  overtier::ImportOptions options;
  options.warn = [](const std::string&) {};
  overtier::ImportResult result;
  overtier::Status s = overtier::ImportImage(store, name, layout, options, &result);
  if (!s.ok()) {
    FUZZ_CHECK(!s.message().empty(), "a refused import says why");
    FUZZ_CHECK(s.message().find(layout) != std::string::npos ||
                   s.message().find(name) != std::string::npos,
               "a refusal names the layout or the image");
    return 0;
  }
  FUZZ_CHECK(!result.images.empty(), "an import that succeeds made an image");
  overtier::fuzz::CheckFsckClean(store);
  return 0;
}
