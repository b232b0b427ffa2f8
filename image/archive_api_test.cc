#include "image/archive_api.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <string>

#include "image/digest_api.h"

namespace overtier {
namespace {

bool Has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Whether the process has `soname` loaded (without loading it).
bool Loaded(const char* soname) {
  void* h = dlopen(soname, RTLD_LAZY | RTLD_NOLOAD);
  if (h != nullptr) dlclose(h);
  return h != nullptr;
}

// This binary does not link libarchive: the functions come from dlopen,
// once.
TEST(ArchiveApi, LoadsLibarchiveAtRunTime) {
  EXPECT_FALSE(Loaded("libarchive.so.13")) << "linked, not loaded when needed";
  const ArchiveApi* api = nullptr;
  Status s = LoadArchiveApi(&api);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Loaded("libarchive.so.13"));
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(&Archive(), api);
  const ArchiveApi* again = nullptr;
  ASSERT_TRUE(LoadArchiveApi(&again).ok());
  EXPECT_EQ(again, api) << "loaded once";
  struct archive* a = api->archive_write_new();
  ASSERT_NE(a, nullptr) << "a working function";
  EXPECT_EQ(api->archive_write_set_format_pax(a), ARCHIVE_OK);
  EXPECT_EQ(api->archive_write_free(a), ARCHIVE_OK);
}

TEST(ArchiveApi, AMissingLibrarySaysWhatToInstall) {
  ArchiveApi api;
  Status s = BindArchiveApi("libovertier-no-such-library.so.9", &api);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(Has(s.message(), "cannot load libovertier-no-such-library.so.9")) << s.message();
  EXPECT_TRUE(Has(s.message(), "install libarchive13")) << s.message();
}

TEST(ArchiveApi, ALibraryWithoutTheFunctionsIsNotTaken) {
  ArchiveApi api;
  Status s = BindArchiveApi("libc.so.6", &api);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(Has(s.message(), "libc.so.6 has no archive_entry_acl_next")) << s.message();
}

TEST(DigestApi, LoadsLibcryptoAtRunTime) {
  EXPECT_FALSE(Loaded("libcrypto.so.3")) << "linked, not loaded when needed";
  const DigestApi* api = nullptr;
  Status s = LoadDigestApi(&api);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Loaded("libcrypto.so.3"));
  const DigestApi* again = nullptr;
  ASSERT_TRUE(LoadDigestApi(&again).ok());
  EXPECT_EQ(again, api) << "loaded once";
  EXPECT_NE(api->EVP_sha256(), nullptr) << "a working function";
}

TEST(DigestApi, AMissingLibrarySaysWhatToInstall) {
  DigestApi api;
  Status s = BindDigestApi("libovertier-no-such-library.so.9", &api);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(Has(s.message(), "install libssl3")) << s.message();
}

TEST(DigestApi, ALibraryWithoutTheFunctionsIsNotTaken) {
  DigestApi api;
  Status s = BindDigestApi("libc.so.6", &api);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(Has(s.message(), "libc.so.6 has no EVP_MD_CTX_new")) << s.message();
}

}  // namespace
}  // namespace overtier
