#include "migrate/policy.h"

#include <gtest/gtest.h>

#include "overtier/control.h"

namespace overtier {
namespace {

constexpr int64_t kSec = 1000000000;
constexpr int64_t kDay = 86400 * kSec;
constexpr int64_t kNow = 1000 * kDay;

PolicyRules MustParse(std::string_view text) {
  PolicyRules r;
  Status s = ParsePolicyRules(text, &r);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return r;
}

std::string ParseError(std::string_view text) {
  PolicyRules r;
  Status s = ParsePolicyRules(text, &r);
  EXPECT_EQ(s.err(), EINVAL) << text;
  return s.message();
}

FileFacts File(std::string path, uint64_t size, int64_t age_days = 0,
               uint32_t state = OVERTIER_STATE_RESIDENT) {
  FileFacts f;
  f.rel_path = std::move(path);
  f.size = size;
  f.atime_ns = kNow - age_days * kDay;
  f.mtime_ns = kNow - age_days * kDay;
  f.state = state;
  f.resident_bytes = state == OVERTIER_STATE_RELEASED ? 0 : size;
  return f;
}

// Sizes ("size>=1M", "keep=64K") are ParseByteSize's: migrate/byte_size_test.cc.
TEST(PolicyParse, Values) {
  int64_t ns = 0;
  EXPECT_TRUE(ParseDuration("30", &ns));
  EXPECT_EQ(ns, 30 * kSec);
  EXPECT_TRUE(ParseDuration("15m", &ns));
  EXPECT_EQ(ns, 900 * kSec);
  EXPECT_TRUE(ParseDuration("2w", &ns));
  EXPECT_EQ(ns, 14 * kDay);
  for (const char* bad : {"", "d", "1y", "1dd", "-1d", "99999999999999w"})
    EXPECT_FALSE(ParseDuration(bad, &ns)) << bad;

  double p = 0;
  EXPECT_TRUE(ParsePercent("90%", &p));
  EXPECT_DOUBLE_EQ(p, 90);
  EXPECT_TRUE(ParsePercent("12.5", &p));
  EXPECT_DOUBLE_EQ(p, 12.5);
  EXPECT_TRUE(ParsePercent("0", &p));
  for (const char* bad : {"", "%", "101", "-1", "+5", "x", "nan", "5%%"})
    EXPECT_FALSE(ParsePercent(bad, &p)) << bad;
}

TEST(PolicyParse, FullFile) {
  PolicyRules r = MustParse(
      "# comment\n"
      "\n"
      "watermark high=85% low=70   # trailing comment\n"
      "archive size>=1M mtime>1d\n"
      "  release\tkeep=64K atime>30d path=*.iso\n"
      "pin path=etc/* owner=root\n"
      "pin owner!=0\r\n");
  ASSERT_EQ(r.rules.size(), 4u);
  EXPECT_TRUE(r.has_watermarks());
  EXPECT_DOUBLE_EQ(*r.high_pct, 85);
  EXPECT_DOUBLE_EQ(*r.low_pct, 70);
  EXPECT_EQ(r.watermark_line, 3);
  EXPECT_EQ(r.rules[0].action, PolicyRule::Action::kArchive);
  EXPECT_EQ(r.rules[0].line, 4);
  ASSERT_EQ(r.rules[0].conds.size(), 2u);
  EXPECT_EQ(r.rules[0].conds[0].key, PolicyCond::Key::kSize);
  EXPECT_EQ(r.rules[0].conds[0].op, PolicyCond::Op::kGe);
  EXPECT_EQ(r.rules[0].conds[0].bytes, 1u << 20);
  EXPECT_EQ(r.rules[0].conds[1].age_ns, kDay);
  EXPECT_EQ(r.rules[1].action, PolicyRule::Action::kRelease);
  EXPECT_EQ(r.rules[1].keep, 65536u);
  EXPECT_EQ(r.rules[1].conds[1].glob, "*.iso");
  EXPECT_EQ(r.rules[2].conds[1].uid, 0u);
  EXPECT_EQ(r.rules[3].conds[0].op, PolicyCond::Op::kNe);

  PolicyRules empty = MustParse("");
  EXPECT_TRUE(empty.rules.empty());
  EXPECT_FALSE(empty.has_watermarks());
}

TEST(PolicyParse, ErrorsNameTheLine) {
  EXPECT_EQ(ParseError("archive\narchve size>1\n"),
            "line 2: unknown action 'archve' (archive, release, pin, watermark)");
  EXPECT_EQ(ParseError("archive colour=red"),
            "line 1: unknown condition 'colour' in 'colour=red' (size, atime, mtime, path, owner)");
  EXPECT_EQ(ParseError("\n\nrelease size>12Q"),
            "line 3: 'size>12Q': '12Q' is not a size (BYTES, or with K/M/G/T)");
  EXPECT_EQ(ParseError("archive atime>3y"),
            "line 1: 'atime>3y': '3y' is not a duration (N with s, m, h, d or w)");
  EXPECT_NE(ParseError("archive atime=3d").find("line 1: 'atime=3d': atime takes < <= > >="),
            std::string::npos);
  EXPECT_EQ(ParseError("pin path>x"), "line 1: 'path>x': path takes = or !=");
  EXPECT_EQ(ParseError("pin owner=no-such-user-here"),
            "line 1: 'owner=no-such-user-here': no user 'no-such-user-here'");
  EXPECT_EQ(ParseError("archive keep=4K"), "line 1: 'keep=4K': keep= only goes with release");
  EXPECT_EQ(ParseError("release keep=1 keep=2"), "line 1: keep= given twice");
  EXPECT_EQ(ParseError("release keep=x"), "line 1: 'keep=x': not a size (BYTES, or with K/M/G/T)");
  EXPECT_NE(ParseError("archive size").find("line 1: 'size' is not a condition"),
            std::string::npos);
  EXPECT_EQ(ParseError("archive size="), "line 1: 'size=': missing value");
  EXPECT_EQ(ParseError("release\nwatermark high=50"),
            "line 2: watermark needs both high= and low=");
  EXPECT_EQ(ParseError("release\nwatermark high=50 low=60"),
            "line 2: watermark low= must be below high= (the usage releases bring it down to)");
  EXPECT_EQ(ParseError("release\nwatermark high=150 low=60"),
            "line 2: 'high=150': not a percentage from 0 to 100");
  EXPECT_EQ(ParseError("release\nwatermark high=90 low=60 mid=3"),
            "line 2: 'mid=3': watermark takes high=PERCENT and low=PERCENT");
  EXPECT_EQ(ParseError("release\nwatermark high=90 low=60\nwatermark high=80 low=10"),
            "line 3: a second watermark line (the first is line 2)");
  EXPECT_EQ(ParseError("archive\nwatermark high=90 low=60"),
            "line 2: watermark without any release rule (watermarks choose among the files "
            "release rules select)");
}

TEST(PolicyParse, LoadNamesTheFile) {
  PolicyRules r;
  Status s = LoadPolicyRules("/nonexistent/rules", &r);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_NE(s.ToString().find("/nonexistent/rules"), std::string::npos);
}

TEST(PolicyMatch, Conditions) {
  PolicyRules r = MustParse(
      "archive size>=1M size<1G\n"
      "archive atime>7d\n"
      "archive mtime<=1h\n"
      "archive path=*.iso\n"
      "archive path=data/*\n"
      "archive path!=*.keep owner=0\n"
      "archive\n");
  auto m = [&](int rule, const FileFacts& f) { return RuleMatches(r.rules[rule], f, kNow); };
  EXPECT_TRUE(m(0, File("a", 1 << 20)));
  EXPECT_FALSE(m(0, File("a", (1 << 20) - 1)));
  EXPECT_FALSE(m(0, File("a", 1ull << 30)));

  EXPECT_TRUE(m(1, File("a", 0, 8)));
  EXPECT_FALSE(m(1, File("a", 0, 7)));  // exactly 7 days is not older than 7 days
  FileFacts recent = File("a", 0, 5);
  recent.mtime_ns = kNow - 3600 * kSec;
  EXPECT_TRUE(m(2, recent));
  recent.mtime_ns -= 1;
  EXPECT_FALSE(m(2, recent));

  // A glob without '/' matches the base name at any depth...
  EXPECT_TRUE(m(3, File("x.iso", 0)));
  EXPECT_TRUE(m(3, File("deep/down/x.iso", 0)));
  EXPECT_FALSE(m(3, File("x.iso.part", 0)));
  // ... one with '/' the whole relative path, '*' crossing directories.
  EXPECT_TRUE(m(4, File("data/a", 0)));
  EXPECT_TRUE(m(4, File("data/sub/b", 0)));
  EXPECT_FALSE(m(4, File("other/data/a", 0)));
  EXPECT_FALSE(m(4, File("data", 0)));

  FileFacts f = File("a.bin", 0);
  f.uid = 0;
  EXPECT_TRUE(m(5, f));
  f.uid = 1000;
  EXPECT_FALSE(m(5, f));
  f.uid = 0;
  f.rel_path = "x/a.keep";
  EXPECT_FALSE(m(5, f));
  EXPECT_TRUE(m(6, f));  // no conditions: everything
}

TEST(PolicyPlan, ArchiveAndReleaseWithoutWatermarks) {
  PolicyRules r = MustParse(
      "archive size>=100\n"
      "release keep=10 path=cold/*\n"
      "pin path=cold/pinned\n");
  std::vector<FileFacts> files = {
      File("small", 50),                                      // 0: nothing
      File("big", 200),                                       // 1: archive
      File("big-archived", 200, 0, OVERTIER_STATE_ARCHIVED),  // 2: already archived
      File("cold/a", 300),                                    // 3: archive+release
      File("cold/b", 300, 0, OVERTIER_STATE_ARCHIVED),        // 4: release
      File("cold/c", 300, 0, OVERTIER_STATE_RELEASED),        // 5: nothing left to free
      File("cold/pinned", 300, 0, OVERTIER_STATE_ARCHIVED),   // 6: pin rule
      File("cold/nr", 300, 0, OVERTIER_STATE_ARCHIVED),       // 7: norelease
      File("cold/dirty", 300, 0, OVERTIER_STATE_DIRTY),       // 8: cannot be released
      File("cold/busy", 300),                                 // 9: archive in progress
      File("cold/lower", 300),                                // 10: only in a lower layer
      File("lower-big", 300),                                 // 11: the same, archive rule
  };
  files[7].norelease = true;
  files[9].mig_flags = OVERTIER_MIG_ARCHIVE_IN_PROGRESS;
  files[10].mig_flags = OVERTIER_MIG_LOWER;
  files[11].mig_flags = OVERTIER_MIG_LOWER;
  Plan p = MakePlan(r, files, std::nullopt, kNow);
  ASSERT_EQ(p.actions.size(), 3u);
  EXPECT_EQ(p.actions[0].file, 1u);
  EXPECT_EQ(p.actions[0].op, PlanOp::kArchive);
  EXPECT_EQ(p.actions[0].line, 1);
  EXPECT_EQ(p.actions[1].file, 3u);
  EXPECT_EQ(p.actions[1].op, PlanOp::kArchiveRelease);
  EXPECT_EQ(p.actions[1].keep, 10u);
  EXPECT_EQ(p.actions[1].freeing, 290u);
  EXPECT_EQ(p.actions[1].line, 2);
  EXPECT_FALSE(p.actions[1].watermark);
  EXPECT_EQ(p.actions[2].file, 4u);
  EXPECT_EQ(p.actions[2].op, PlanOp::kRelease);
  EXPECT_EQ(p.pinned, 1u);
  EXPECT_EQ(p.norelease, 1u);
  EXPECT_EQ(p.unreleasable, 2u);
  EXPECT_EQ(p.lower, 2u);
  EXPECT_EQ(p.planned_free, 580u);
  EXPECT_FALSE(p.over_high);
}

TEST(PolicyPlan, PickVictimsLeastRecentlyUsedFirst) {
  std::vector<Victim> v = {
      {0, 50, 100, "c"}, {1, 10, 100, "b"}, {2, 10, 100, "a"}, {3, 5, 0, "z"}, {4, 30, 100, "d"},
  };
  // Oldest atime first, the path breaking the tie, nothing freeing 0 bytes.
  EXPECT_EQ(PickVictims(v, 150), (std::vector<size_t>{2, 1}));
  EXPECT_EQ(PickVictims(v, 200), (std::vector<size_t>{2, 1}));
  EXPECT_EQ(PickVictims(v, 201), (std::vector<size_t>{2, 1, 4}));
  EXPECT_EQ(PickVictims(v, 0), (std::vector<size_t>{}));
  EXPECT_EQ(PickVictims(v, 100000), (std::vector<size_t>{2, 1, 4, 0}));
}

TEST(PolicyPlan, Watermarks) {
  PolicyRules r = MustParse(
      "watermark high=80 low=50\n"
      "release path=*.dat\n"
      "pin path=keep.dat\n");
  std::vector<FileFacts> files = {
      File("new.dat", 100, 1),                             // 0
      File("old.dat", 100, 30, OVERTIER_STATE_ARCHIVED),   // 1: oldest
      File("mid.dat", 100, 10),                            // 2
      File("keep.dat", 100, 99, OVERTIER_STATE_ARCHIVED),  // 3: pinned although oldest
      File("x.txt", 100, 99),                              // 4: no release rule
  };
  // Below high: nothing, whatever the rules select.
  Plan p = MakePlan(r, files, Usage{790, 210}, kNow);
  EXPECT_TRUE(p.actions.empty());
  EXPECT_FALSE(p.over_high);
  // Unknown usage: nothing either.
  EXPECT_TRUE(MakePlan(r, files, std::nullopt, kNow).actions.empty());

  // 85% used of 1000 bytes: 350 to free to reach 50%, but the candidates
  // free 300 in all: all three, oldest first.
  p = MakePlan(r, files, Usage{850, 150}, kNow);
  EXPECT_TRUE(p.over_high);
  EXPECT_EQ(p.need_bytes, 350u);
  ASSERT_EQ(p.actions.size(), 3u);
  EXPECT_EQ(p.actions[0].file, 1u);
  EXPECT_EQ(p.actions[0].op, PlanOp::kRelease);
  EXPECT_EQ(p.actions[1].file, 2u);
  EXPECT_EQ(p.actions[1].op, PlanOp::kArchiveRelease);
  EXPECT_EQ(p.actions[2].file, 0u);
  EXPECT_TRUE(p.actions[2].watermark);
  EXPECT_EQ(p.pinned, 1u);

  // 81% of 100 bytes: 31 to free; the oldest unpinned candidate is enough.
  p = MakePlan(r, files, Usage{81, 19}, kNow);
  ASSERT_EQ(p.actions.size(), 1u);
  EXPECT_EQ(p.actions[0].file, 1u);
  EXPECT_EQ(p.planned_free, 100u);

  // Archive rules act whatever the usage; a watermark victim is one
  // action, not an archive and then a release.
  PolicyRules r2 = MustParse(
      "watermark high=80 low=50\n"
      "archive\n"
      "release path=*.dat\n");
  p = MakePlan(r2, files, Usage{81, 19}, kNow);
  ASSERT_EQ(p.actions.size(), 4u);
  EXPECT_EQ(p.actions[0].file, 0u);
  EXPECT_EQ(p.actions[0].op, PlanOp::kArchive);
  EXPECT_EQ(p.actions[1].file, 2u);
  EXPECT_EQ(p.actions[2].file, 4u);
  EXPECT_EQ(p.actions[3].file, 3u);  // keep.dat, oldest (no pin in r2)
  EXPECT_EQ(p.actions[3].op, PlanOp::kRelease);
  EXPECT_TRUE(p.actions[3].watermark);
}

}  // namespace
}  // namespace overtier
