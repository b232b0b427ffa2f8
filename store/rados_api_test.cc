#include "store/rados_api.h"

#include <gtest/gtest.h>

#include <string>

namespace overtier {
namespace {

bool Has(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// This binary does not link librados: the functions come from dlopen.
TEST(RadosApi, LoadsLibradosAtRunTime) {
  const RadosApi* api = nullptr;
  Status s = LoadRadosApi(&api);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_NE(api, nullptr);
  EXPECT_NE(api->create2, nullptr);
  EXPECT_NE(api->nobjects_list_close, nullptr);
  const RadosApi* again = nullptr;
  ASSERT_TRUE(LoadRadosApi(&again).ok());
  EXPECT_EQ(again, api) << "loaded once";
  rados_t cluster = nullptr;
  ASSERT_EQ(api->create2(&cluster, "ceph", "client.admin", 0), 0) << "a working function";
  api->shutdown(cluster);
}

TEST(RadosApi, AMissingLibrarySaysWhatToInstall) {
  RadosApi api{};
  Status s = BindRadosApi("libovertier-no-such-library.so.9", &api);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(Has(s.message(), "cannot load libovertier-no-such-library.so.9")) << s.message();
  EXPECT_TRUE(Has(s.message(), "install librados2")) << s.message();
}

TEST(RadosApi, ALibraryWithoutTheFunctionsIsNotTaken) {
  RadosApi api{};
  Status s = BindRadosApi("libc.so.6", &api);
  EXPECT_EQ(s.err(), ENOTSUP);
  EXPECT_TRUE(Has(s.message(), "libc.so.6 has no rados_create2")) << s.message();
}

}  // namespace
}  // namespace overtier
