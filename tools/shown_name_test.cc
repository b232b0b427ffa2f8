#include "tools/shown_name.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace overtier::cli {
namespace {

// Whether any byte of s would reach a terminal as a control.
bool HasControlByte(const std::string& s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return true;
    // C1 controls in UTF-8: C2 80 .. C2 9F.
    if (c == 0xc2 && i + 1 < s.size() && (static_cast<unsigned char>(s[i + 1]) & 0xe0) == 0x80)
      return true;
  }
  return false;
}

// What bash makes of each quoted word: printf '%s\0' WORD...
std::vector<std::string> BashWords(const std::vector<std::string>& quoted) {
  std::string script = "printf '%s\\0'";
  for (const std::string& q : quoted) script += " " + q;
  char path[] = "/tmp/shown_name_test.XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  FILE* f = fdopen(fd, "w");
  std::fwrite(script.data(), 1, script.size(), f);
  std::fclose(f);
  FILE* p = popen((std::string("bash ") + path).c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0);
  unlink(path);
  std::vector<std::string> words;
  size_t start = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\0') {
      words.push_back(out.substr(start, i - start));
      start = i + 1;
    }
  }
  return words;
}

TEST(ShellQuote, PlainNamesAreShownAsTheyAre) {
  for (const char* n : {"a", "file.txt", "dir/sub-dir/x_y", "a+b,c%d:e=f@g", "/abs/path", "-rf",
                        "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac"}) {
    EXPECT_EQ(ShellQuote(n), n);
  }
}

TEST(ShellQuote, QuotesWhatAShellWouldSplitOrExpand) {
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("$HOME"), "'$HOME'");
  EXPECT_EQ(ShellQuote("*"), "'*'");
  EXPECT_EQ(ShellQuote("~x"), "'~x'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote("'"), "\\'");
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("quote\"back\\slash"), "'quote\"back\\slash'");
}

TEST(ShellQuote, ControlsAndBadBytesBecomeEscapes) {
  EXPECT_EQ(ShellQuote("a\nb"), "'a'$'\\n''b'");
  EXPECT_EQ(ShellQuote("bad\xff\xfename"), "'bad'$'\\377\\376''name'");
  EXPECT_EQ(ShellQuote("\x1b[31mred"), "$'\\033''[31mred'");
  EXPECT_EQ(ShellQuote("tab\t"), "'tab'$'\\t'");
  // A C1 control (U+009B, the one-byte CSI) and an overlong '/'.
  EXPECT_EQ(ShellQuote("x\xc2\x9by"), "'x'$'\\302\\233''y'");
  EXPECT_EQ(ShellQuote("\xc0\xaf"), "$'\\300\\257'");
}

TEST(ShellQuote, BashReadsEveryQuotedNameBackByteForByte) {
  std::vector<std::string> names = {"a b",          "it's",     "a\nb",         "bad\xff\xfename",
                                    "\x1b]0;x\x07", "''",       "\\",           "$(id)",
                                    "`id`",         "!x",       "#x",           "~",
                                    "a\x7f",        "\xe2\x82", "\xed\xa0\x80", "{a,b}",
                                    "[ab]",         "x\xc2\x85"};
  std::mt19937 rng(20261207);
  for (int i = 0; i < 300; ++i) {
    std::string s;
    const int len = 1 + static_cast<int>(rng() % 12);
    for (int k = 0; k < len; ++k) s += static_cast<char>(1 + rng() % 255);  // no NUL
    names.push_back(s);
  }
  std::vector<std::string> quoted;
  for (const std::string& n : names) {
    quoted.push_back(ShellQuote(n));
    EXPECT_FALSE(HasControlByte(quoted.back())) << quoted.back();
  }
  const std::vector<std::string> back = BashWords(quoted);
  ASSERT_EQ(back.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(back[i], names[i]) << quoted[i];
}

TEST(ShownName, QuotesOnlyForATerminal) {
  EXPECT_EQ(ShownName("a\nb", /*terminal=*/false), "a\nb");
  EXPECT_EQ(ShownName("a\nb", /*terminal=*/true), "'a'$'\\n''b'");
  EXPECT_EQ(ShownName("plain", /*terminal=*/true), "plain");
}

TEST(MessageSafe, EscapesControlsAndBadBytesOnly) {
  EXPECT_EQ(MessageSafe("/x/a b: No such file or directory"), "/x/a b: No such file or directory");
  EXPECT_EQ(MessageSafe("caf\xc3\xa9 'q'"), "caf\xc3\xa9 'q'");
  EXPECT_EQ(MessageSafe("/x\ny: gone"), "/x\\ny: gone");
  EXPECT_EQ(MessageSafe("\x1b[2J"), "\\033[2J");
  EXPECT_EQ(MessageSafe("bad\xff"), "bad\\377");
  EXPECT_EQ(MessageSafe("\xc2\x9b"), "\\302\\233");
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string s;
    for (int k = 0; k < 16; ++k) s += static_cast<char>(rng() % 256);
    EXPECT_FALSE(HasControlByte(MessageSafe(s)));
  }
}

}  // namespace
}  // namespace overtier::cli
