#include "tools/json_out.h"

#include <gtest/gtest.h>

namespace overtier::cli {
namespace {

using nlohmann::json;

TEST(JsonOutTest, Utf8NamesAreWrittenAsTheyAre) {
  json j;
  SetPath(&j, "path", "/mnt/caf\xc3\xa9 \xe2\x82\xac");
  EXPECT_EQ(JsonText(j), "{\"path\":\"/mnt/caf\xc3\xa9 \xe2\x82\xac\"}");
  EXPECT_FALSE(j.contains("path_hex"));
}

TEST(JsonOutTest, OtherBytesBecomeReplacementCharactersAndTheHexIsBeside) {
  json j;
  SetPath(&j, "path",
          "/m/\xff\xfe"
          "n");
  // The dump that threw before (json.exception.type_error.316).
  EXPECT_THROW((void)j.dump(), json::type_error);
  EXPECT_EQ(JsonText(j),
            "{\"path\":\"/m/\xef\xbf\xbd\xef\xbf\xbdn\",\"path_hex\":\"2f6d2ffffe6e\"}");
  // What a script reads back is valid JSON.
  json back = json::parse(JsonText(j, 2));
  EXPECT_EQ(back["path_hex"], "2f6d2ffffe6e");
}

TEST(JsonOutTest, IsUtf8RejectsWhatJsonCannotCarry) {
  EXPECT_TRUE(IsUtf8(""));
  EXPECT_TRUE(IsUtf8("plain\nnew line"));
  EXPECT_FALSE(IsUtf8("\xc3"));          // cut short
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(IsUtf8("latin-1 caf\xe9"));
}

TEST(JsonOutTest, AListGetsTheHexOfEveryPathWhenOneIsNotUtf8) {
  json j;
  SetPaths(&j, "files", {"a", "b"});
  EXPECT_EQ(JsonText(j), "{\"files\":[\"a\",\"b\"]}");
  SetPaths(&j, "files", {"a", "\xe9"});
  EXPECT_EQ(JsonText(j), "{\"files\":[\"a\",\"\xef\xbf\xbd\"],\"files_hex\":[\"61\",\"e9\"]}");
}

TEST(JsonOutTest, NestedStringsNeverThrow) {
  json j = {{"errors", json::array({"cannot open \xff"})}, {"n", 1}};
  EXPECT_EQ(JsonText(j), "{\"errors\":[\"cannot open \xef\xbf\xbd\"],\"n\":1}");
}

}  // namespace
}  // namespace overtier::cli
