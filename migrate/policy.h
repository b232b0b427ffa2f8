// The policy engine's pure logic (docs/POLICY.md): parsing a rules file,
// matching a file's attributes against the rules, and choosing what to
// archive and release, including the least recently used victims when the
// upper file system is above its high watermark. Nothing here touches a
// file system: migrate/policy_engine.h gathers the facts (a walk through
// the mount) and carries the plan out (control ioctls).
#ifndef OVERTIER_MIGRATE_POLICY_H_
#define OVERTIER_MIGRATE_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "overtier/status.h"

namespace overtier {

// One condition of a rule ("size>=1M", "atime>30d", "path=*.iso",
// "owner!=root").
struct PolicyCond {
  enum class Key { kSize, kAtime, kMtime, kPath, kOwner };
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe };
  Key key = Key::kSize;
  Op op = Op::kEq;
  uint64_t bytes = 0;  // kSize
  int64_t age_ns = 0;  // kAtime, kMtime: the file's age (now - time)
  std::string glob;    // kPath
  uint32_t uid = 0;    // kOwner
  std::string text;    // the term as written, for messages
};

// One line of the rules file: an action and its conditions, all of which
// must hold (an empty list matches every file).
struct PolicyRule {
  enum class Action { kArchive, kRelease, kPin };
  Action action = Action::kArchive;
  uint64_t keep = 0;  // kRelease: bytes at the start of the file kept resident
  std::vector<PolicyCond> conds;
  int line = 0;  // 1-based line in the rules file
};

struct PolicyRules {
  std::vector<PolicyRule> rules;  // in file order
  // "watermark high=H% low=L%": percentages of the upper file system's
  // usage, used / (used + available) as df(1) computes it. When set,
  // release rules act only above `high`, on the least recently used
  // candidates, until the usage is expected below `low`.
  std::optional<double> high_pct, low_pct;
  int watermark_line = 0;

  bool has_watermarks() const { return high_pct.has_value(); }
};

// Parses the text of a rules file. Errors are EINVAL with a message
// "line N: ..." naming the problem (unknown action or key, bad size or
// duration, unknown user, watermarks out of range...).
Status ParsePolicyRules(std::string_view text, PolicyRules* out);
// Reads and parses the rules file at `path`; messages start with "PATH:".
Status LoadPolicyRules(const std::string& path, PolicyRules* out);

// The values of conditions and watermarks. Sizes ("size>=1M", "keep=64K")
// are read by ParseByteSize (migrate/byte_size.h), as on the command line.
// "90", "90%", "12.5%": a percentage in [0, 100].
bool ParsePercent(std::string_view s, double* out);
// "30", "30s", "15m", "12h", "7d", "2w": a duration in nanoseconds.
bool ParseDuration(std::string_view s, int64_t* out_ns);

// What the engine knows of one regular file of the walked tree.
struct FileFacts {
  std::string rel_path;  // relative to the walked root ("a/b.dat")
  uint64_t size = 0;
  int64_t atime_ns = 0, mtime_ns = 0;
  uint32_t uid = 0;
  uint32_t state = 0;           // OVERTIER_STATE_* (GET_STATE)
  uint32_t mig_flags = 0;       // OVERTIER_MIG_*
  uint64_t resident_bytes = 0;  // what a release can free (GET_STATE)
  bool norelease = false;       // carries user.overtier.norelease
};

// Whether every condition of `rule` holds for `f` at time `now_ns`.
bool RuleMatches(const PolicyRule& rule, const FileFacts& f, int64_t now_ns);

// The upper file system's usage (statvfs of the mount).
struct Usage {
  uint64_t used_bytes = 0;
  uint64_t avail_bytes = 0;  // available to unprivileged users, like df
  double percent() const;
};

enum class PlanOp { kArchive, kRelease, kArchiveRelease };
const char* PlanOpName(PlanOp op);  // "archive", "release", "archive+release"

struct PlannedAction {
  size_t file = 0;  // index into the facts given to MakePlan
  PlanOp op = PlanOp::kArchive;
  uint64_t keep = 0;       // kRelease, kArchiveRelease
  uint64_t freeing = 0;    // bytes a release is expected to free
  int line = 0;            // the rule that selected it
  bool watermark = false;  // chosen as a watermark victim
};

struct Plan {
  std::vector<PlannedAction> actions;  // archives in walk order, then releases (LRU first)
  // Files a release rule matched but that are never released.
  uint64_t pinned = 0;        // a pin rule matched
  uint64_t norelease = 0;     // user.overtier.norelease
  uint64_t unreleasable = 0;  // dirty, lost or busy: a release would be refused
  uint64_t lower = 0;         // only in a lower layer: nothing to archive or release
  // Watermarks (when the rules have them and the usage was known).
  bool over_high = false;
  uint64_t need_bytes = 0;    // to free to get down to the low watermark
  uint64_t planned_free = 0;  // what the chosen releases are expected to free
};

// A release candidate for the watermark pass.
struct Victim {
  size_t index = 0;  // caller's index
  int64_t atime_ns = 0;
  uint64_t freeing = 0;
  std::string rel_path;  // tie-break, so that the choice is stable
};
// The least recently used candidates (oldest atime first) whose expected
// frees reach `need`; all of them if they do not. Candidates freeing
// nothing are never chosen. Returns their indices, in release order.
std::vector<size_t> PickVictims(std::vector<Victim> candidates, uint64_t need);

// What a run does with `files`: archive rules archive resident files;
// release rules release archived files and archive-then-release resident
// ones (unless pinned by a pin rule or user.overtier.norelease); with
// watermarks, releases are limited to the LRU victims needed to get from
// above `high` down to `low`, and none at all below `high`. `usage` may be
// empty when unknown (then watermark rules release nothing).
Plan MakePlan(const PolicyRules& rules, const std::vector<FileFacts>& files,
              const std::optional<Usage>& usage, int64_t now_ns);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_POLICY_H_
