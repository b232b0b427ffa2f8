#include "migrate/policy.h"

#include <fnmatch.h>
#include <pwd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "migrate/byte_size.h"
#include "overtier/control.h"

namespace overtier {

namespace {

bool ParseU64(std::string_view* s, uint64_t* out) {
  auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), *out);
  if (ec != std::errc() || end == s->data()) return false;
  s->remove_prefix(end - s->data());
  return true;
}

Status LineError(int line, const std::string& msg) {
  return Status::InvalidArgument("line " + std::to_string(line) + ": " + msg);
}

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// Splits "key>=value" into its three parts; false if there is no operator.
bool SplitTerm(std::string_view term, std::string_view* key, PolicyCond::Op* op,
               std::string_view* value) {
  size_t pos = term.find_first_of("<>=!");
  if (pos == std::string_view::npos || pos == 0) return false;
  *key = term.substr(0, pos);
  std::string_view rest = term.substr(pos);
  struct {
    std::string_view text;
    PolicyCond::Op op;
  } static constexpr kOps[] = {
      {">=", PolicyCond::Op::kGe}, {"<=", PolicyCond::Op::kLe}, {"!=", PolicyCond::Op::kNe},
      {">", PolicyCond::Op::kGt},  {"<", PolicyCond::Op::kLt},  {"=", PolicyCond::Op::kEq},
  };
  for (const auto& o : kOps) {
    if (rest.starts_with(o.text)) {
      *op = o.op;
      *value = rest.substr(o.text.size());
      return true;
    }
  }
  return false;
}

bool IsOrdering(PolicyCond::Op op) {
  return op != PolicyCond::Op::kEq && op != PolicyCond::Op::kNe;
}

template <typename T>
bool Compare(T a, PolicyCond::Op op, T b) {
  switch (op) {
    case PolicyCond::Op::kEq:
      return a == b;
    case PolicyCond::Op::kNe:
      return a != b;
    case PolicyCond::Op::kLt:
      return a < b;
    case PolicyCond::Op::kLe:
      return a <= b;
    case PolicyCond::Op::kGt:
      return a > b;
    case PolicyCond::Op::kGe:
      return a >= b;
  }
  return false;
}

// A user name or a numeric uid.
bool ResolveOwner(std::string_view v, uint32_t* uid) {
  std::string_view digits = v;
  uint64_t n = 0;
  if (ParseU64(&digits, &n) && digits.empty() && n <= std::numeric_limits<uint32_t>::max()) {
    *uid = static_cast<uint32_t>(n);
    return true;
  }
  struct passwd pw, *res = nullptr;
  char buf[4096];
  const std::string name(v);
  if (getpwnam_r(name.c_str(), &pw, buf, sizeof buf, &res) != 0 || res == nullptr) return false;
  *uid = res->pw_uid;
  return true;
}

Status ParseCond(std::string_view term, int line, PolicyCond* c) {
  std::string_view key, value;
  if (!SplitTerm(term, &key, &c->op, &value)) {
    return LineError(line, Quoted(term) +
                               " is not a condition (KEY OP VALUE, e.g. size>=1M, atime>30d, "
                               "path=*.iso, owner=alice)");
  }
  c->text = std::string(term);
  if (value.empty()) return LineError(line, Quoted(term) + ": missing value");
  if (key == "size") {
    c->key = PolicyCond::Key::kSize;
    if (!ParseByteSize(value, &c->bytes))
      return LineError(
          line, Quoted(term) + ": " + Quoted(value) + " is not a size (BYTES, or with K/M/G/T)");
    return Status::OK();
  }
  if (key == "atime" || key == "mtime") {
    c->key = key == "atime" ? PolicyCond::Key::kAtime : PolicyCond::Key::kMtime;
    if (!IsOrdering(c->op))
      return LineError(line, Quoted(term) + ": " + std::string(key) +
                                 " takes < <= > >= (an age: '>' means older than)");
    if (!ParseDuration(value, &c->age_ns))
      return LineError(line, Quoted(term) + ": " + Quoted(value) +
                                 " is not a duration (N with s, m, h, d or w)");
    return Status::OK();
  }
  if (key == "path" || key == "owner") {
    if (IsOrdering(c->op))
      return LineError(line, Quoted(term) + ": " + std::string(key) + " takes = or !=");
    if (key == "path") {
      c->key = PolicyCond::Key::kPath;
      c->glob = std::string(value);
      return Status::OK();
    }
    c->key = PolicyCond::Key::kOwner;
    if (!ResolveOwner(value, &c->uid))
      return LineError(line, Quoted(term) + ": no user " + Quoted(value));
    return Status::OK();
  }
  return LineError(line, "unknown condition " + Quoted(key) + " in " + Quoted(term) +
                             " (size, atime, mtime, path, owner)");
}

Status ParseWatermark(const std::vector<std::string_view>& terms, int line, PolicyRules* out) {
  if (out->watermark_line != 0)
    return LineError(line, "a second watermark line (the first is line " +
                               std::to_string(out->watermark_line) + ")");
  std::optional<double> high, low;
  for (std::string_view t : terms) {
    size_t eq = t.find('=');
    std::string_view key = t.substr(0, eq);
    if (eq == std::string_view::npos || (key != "high" && key != "low"))
      return LineError(line, Quoted(t) + ": watermark takes high=PERCENT and low=PERCENT");
    double v;
    if (!ParsePercent(t.substr(eq + 1), &v))
      return LineError(line, Quoted(t) + ": not a percentage from 0 to 100");
    (key == "high" ? high : low) = v;
  }
  if (!high || !low) return LineError(line, "watermark needs both high= and low=");
  if (!(*low < *high))
    return LineError(line,
                     "watermark low= must be below high= (the usage releases bring it "
                     "down to)");
  out->high_pct = high;
  out->low_pct = low;
  out->watermark_line = line;
  return Status::OK();
}

Status ParseLine(std::string_view text, int line, PolicyRules* out) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i;
    if (i == text.size() || text[i] == '#') break;  // a word starting with '#': a comment
    size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t' && text[i] != '\r') ++i;
    words.push_back(text.substr(start, i - start));
  }
  if (words.empty()) return Status::OK();
  std::string_view action = words[0];
  std::vector<std::string_view> terms(words.begin() + 1, words.end());
  if (action == "watermark") return ParseWatermark(terms, line, out);
  PolicyRule rule;
  rule.line = line;
  if (action == "archive") {
    rule.action = PolicyRule::Action::kArchive;
  } else if (action == "release") {
    rule.action = PolicyRule::Action::kRelease;
  } else if (action == "pin") {
    rule.action = PolicyRule::Action::kPin;
  } else {
    return LineError(line,
                     "unknown action " + Quoted(action) + " (archive, release, pin, watermark)");
  }
  bool keep_seen = false;
  for (std::string_view t : terms) {
    if (t.starts_with("keep=")) {
      if (rule.action != PolicyRule::Action::kRelease)
        return LineError(line, Quoted(t) + ": keep= only goes with release");
      if (keep_seen) return LineError(line, "keep= given twice");
      if (!ParseByteSize(t.substr(5), &rule.keep))
        return LineError(line, Quoted(t) + ": not a size (BYTES, or with K/M/G/T)");
      keep_seen = true;
      continue;
    }
    PolicyCond c;
    OVT_RETURN_IF_ERROR(ParseCond(t, line, &c));
    rule.conds.push_back(std::move(c));
  }
  out->rules.push_back(std::move(rule));
  return Status::OK();
}

bool PathMatches(const std::string& glob, const std::string& rel) {
  // A glob without '/' names files at any depth by their base name (like
  // .gitignore); with '/', the whole path from the walked root, '*'
  // crossing directories so that "data/*" covers the subtree.
  if (glob.find('/') == std::string::npos) {
    size_t slash = rel.rfind('/');
    const char* base = rel.c_str() + (slash == std::string::npos ? 0 : slash + 1);
    return fnmatch(glob.c_str(), base, 0) == 0;
  }
  return fnmatch(glob.c_str(), rel.c_str(), 0) == 0;
}

bool CondMatches(const PolicyCond& c, const FileFacts& f, int64_t now_ns) {
  switch (c.key) {
    case PolicyCond::Key::kSize:
      return Compare(f.size, c.op, c.bytes);
    case PolicyCond::Key::kAtime:
      return Compare(now_ns - f.atime_ns, c.op, c.age_ns);
    case PolicyCond::Key::kMtime:
      return Compare(now_ns - f.mtime_ns, c.op, c.age_ns);
    case PolicyCond::Key::kPath:
      return PathMatches(c.glob, f.rel_path) == (c.op == PolicyCond::Op::kEq);
    case PolicyCond::Key::kOwner:
      return Compare(f.uid, c.op, c.uid);
  }
  return false;
}

const PolicyRule* FirstMatch(const PolicyRules& rules, PolicyRule::Action action,
                             const FileFacts& f, int64_t now_ns) {
  for (const PolicyRule& r : rules.rules)
    if (r.action == action && RuleMatches(r, f, now_ns)) return &r;
  return nullptr;
}

constexpr uint32_t kBusyFlags = OVERTIER_MIG_ARCHIVE_IN_PROGRESS | OVERTIER_MIG_RESTORE_IN_PROGRESS;

}  // namespace

bool ParseDuration(std::string_view s, int64_t* out_ns) {
  uint64_t v;
  if (!ParseU64(&s, &v)) return false;
  uint64_t unit = 1;  // seconds
  if (s == "" || s == "s") {
    unit = 1;
  } else if (s == "m") {
    unit = 60;
  } else if (s == "h") {
    unit = 3600;
  } else if (s == "d") {
    unit = 86400;
  } else if (s == "w") {
    unit = 7 * 86400;
  } else {
    return false;
  }
  constexpr uint64_t kMaxNs = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (v > kMaxNs / unit / 1000000000ull) return false;
  *out_ns = static_cast<int64_t>(v * unit * 1000000000ull);
  return true;
}

bool ParsePercent(std::string_view s, double* out) {
  if (s.ends_with('%')) s.remove_suffix(1);
  if (s.empty() || s[0] == '+' || s[0] == '-') return false;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v) || v < 0 || v > 100)
    return false;
  *out = v;
  return true;
}

Status ParsePolicyRules(std::string_view text, PolicyRules* out) {
  PolicyRules rules;
  int line = 0;
  while (!text.empty()) {
    ++line;
    size_t nl = text.find('\n');
    std::string_view l = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    OVT_RETURN_IF_ERROR(ParseLine(l, line, &rules));
  }
  if (rules.has_watermarks() &&
      std::none_of(rules.rules.begin(), rules.rules.end(),
                   [](const PolicyRule& r) { return r.action == PolicyRule::Action::kRelease; })) {
    return LineError(rules.watermark_line,
                     "watermark without any release rule (watermarks choose among the files "
                     "release rules select)");
  }
  *out = std::move(rules);
  return Status::OK();
}

Status LoadPolicyRules(const std::string& path, PolicyRules* out) {
  std::ifstream in(path);
  if (!in) return Status::FromErrno(path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::FromErrno(path);
  Status s = ParsePolicyRules(ss.str(), out);
  // "PATH:N: ..." as compilers write it.
  if (!s.ok() && s.message().starts_with("line "))
    return Status::InvalidArgument(path + ":" + s.message().substr(5));
  return s;
}

bool RuleMatches(const PolicyRule& rule, const FileFacts& f, int64_t now_ns) {
  return std::all_of(rule.conds.begin(), rule.conds.end(),
                     [&](const PolicyCond& c) { return CondMatches(c, f, now_ns); });
}

double Usage::percent() const {
  const double total = static_cast<double>(used_bytes) + static_cast<double>(avail_bytes);
  return total == 0 ? 0 : 100.0 * static_cast<double>(used_bytes) / total;
}

const char* PlanOpName(PlanOp op) {
  switch (op) {
    case PlanOp::kArchive:
      return "archive";
    case PlanOp::kRelease:
      return "release";
    case PlanOp::kArchiveRelease:
      return "archive+release";
  }
  return "?";
}

std::vector<size_t> PickVictims(std::vector<Victim> candidates, uint64_t need) {
  std::sort(candidates.begin(), candidates.end(), [](const Victim& a, const Victim& b) {
    if (a.atime_ns != b.atime_ns) return a.atime_ns < b.atime_ns;
    return a.rel_path < b.rel_path;
  });
  std::vector<size_t> out;
  uint64_t freed = 0;
  for (const Victim& v : candidates) {
    if (freed >= need) break;
    if (v.freeing == 0) continue;
    out.push_back(v.index);
    freed += v.freeing;
  }
  return out;
}

Plan MakePlan(const PolicyRules& rules, const std::vector<FileFacts>& files,
              const std::optional<Usage>& usage, int64_t now_ns) {
  Plan plan;
  std::vector<PlannedAction> releases;  // every release the rules select
  std::vector<Victim> victims;
  std::vector<bool> archive(files.size(), false);
  std::vector<int> archive_line(files.size(), 0);
  for (size_t i = 0; i < files.size(); ++i) {
    const FileFacts& f = files[i];
    if (f.mig_flags & OVERTIER_MIG_LOWER) {
      // Its bytes are in a read-only layer: neither rule applies (once
      // written through the mount, it is an upper file like any other).
      plan.lower++;
      continue;
    }
    const bool busy = (f.mig_flags & kBusyFlags) != 0;
    const bool resident = f.state == OVERTIER_STATE_RESIDENT && !busy;
    if (const PolicyRule* a = FirstMatch(rules, PolicyRule::Action::kArchive, f, now_ns);
        a != nullptr && resident) {
      archive[i] = true;
      archive_line[i] = a->line;
    }
    const PolicyRule* r = FirstMatch(rules, PolicyRule::Action::kRelease, f, now_ns);
    if (r == nullptr) continue;
    if (FirstMatch(rules, PolicyRule::Action::kPin, f, now_ns) != nullptr) {
      plan.pinned++;
      continue;
    }
    if (f.norelease) {
      plan.norelease++;
      continue;
    }
    const bool archived =
        (f.state == OVERTIER_STATE_ARCHIVED || f.state == OVERTIER_STATE_RELEASED) && !busy;
    if (!archived && !resident) {
      plan.unreleasable++;
      continue;
    }
    const uint64_t freeing = f.resident_bytes > r->keep ? f.resident_bytes - r->keep : 0;
    if (freeing == 0) continue;  // nothing left to release
    PlannedAction p;
    p.file = i;
    p.op = archived ? PlanOp::kRelease : PlanOp::kArchiveRelease;
    p.keep = r->keep;
    p.freeing = freeing;
    p.line = r->line;
    victims.push_back(Victim{releases.size(), f.atime_ns, freeing, f.rel_path});
    releases.push_back(p);
  }

  std::vector<PlannedAction> chosen;
  if (!rules.has_watermarks()) {
    chosen = releases;
  } else if (usage && usage->percent() > *rules.high_pct) {
    plan.over_high = true;
    const double total =
        static_cast<double>(usage->used_bytes) + static_cast<double>(usage->avail_bytes);
    const double target = total * *rules.low_pct / 100.0;
    const double need = static_cast<double>(usage->used_bytes) - target;
    plan.need_bytes = need > 0 ? static_cast<uint64_t>(std::ceil(need)) : 0;
    for (size_t k : PickVictims(victims, plan.need_bytes)) {
      PlannedAction p = releases[k];
      p.watermark = true;
      chosen.push_back(p);
    }
  }
  // A file both archived and released is one action.
  std::vector<bool> released(files.size(), false);
  for (const PlannedAction& p : chosen) {
    released[p.file] = true;
    plan.planned_free += p.freeing;
  }
  for (size_t i = 0; i < files.size(); ++i) {
    if (!archive[i] || released[i]) continue;
    PlannedAction p;
    p.file = i;
    p.op = PlanOp::kArchive;
    p.line = archive_line[i];
    plan.actions.push_back(p);
  }
  plan.actions.insert(plan.actions.end(), chosen.begin(), chosen.end());
  return plan;
}

}  // namespace overtier
