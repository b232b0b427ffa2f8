// overtier policy check --rules FILE DIR [--json]
// overtier policy run --rules FILE DIR [--dry-run] [--json]
//
// The policy engine (docs/POLICY.md) on a directory tree of an overtier
// mount: `check` (and `run --dry-run`) lists what the rules would archive
// and release, `run` does it through the control ioctls and prints a
// summary. The walk and the ioctls are migrate/policy_engine.h, shared with
// the daemon's periodic mode (-o policy=FILE); this file is the command
// line around it: options, text and JSON output, exit status (0 done,
// 1 some file failed, 2 bad usage or a bad rules file).
#include <cinttypes>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "migrate/policy.h"
#include "migrate/policy_engine.h"
#include "tools/cli.h"
#include "tools/json_out.h"
#include "tools/migrate_format.h"
#include "tools/progress.h"
#include "tools/shown_name.h"

namespace overtier::cli {

namespace {

using nlohmann::json;

std::string PathOf(const std::string& root, const std::string& rel) {
  if (rel.empty()) return root;
  if (!root.empty() && root.back() == '/') return root + rel;
  return root + "/" + rel;
}

std::string ErrorText(const std::string& root, const PolicyError& e) {
  const std::string path = PathOf(root, e.path);
  if (e.op == "walk") return path + ": " + std::strerror(e.err);
  return ControlErrorMessage(path, e.op, e.err);
}

std::string Percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", p);
  return buf;
}

json UsageJson(const std::optional<Usage>& u) {
  if (!u) return nullptr;
  return {
      {"used_bytes", u->used_bytes}, {"avail_bytes", u->avail_bytes}, {"percent", u->percent()}};
}

json ResultJson(const std::string& root, const PolicyRules& rules, const PolicyRunResult& r,
                bool dry_run) {
  json actions = json::array();
  for (size_t i = 0; i < r.plan.actions.size(); ++i) {
    const PlannedAction& a = r.plan.actions[i];
    const FileFacts& f = r.files[a.file];
    json j = {{"op", PlanOpName(a.op)},     {"rule_line", a.line},
              {"watermark", a.watermark},   {"size", f.size},
              {"atime_ns", f.atime_ns},     {"mtime_ns", f.mtime_ns},
              {"state", StateName(f.state)}};
    SetPath(&j, "path", PathOf(root, f.rel_path));
    if (a.op != PlanOp::kArchive) {
      j["keep"] = a.keep;
      j["freeing"] = a.freeing;
    }
    const int o = r.outcome[i];
    j["result"] = o < 0 ? "planned" : o == 0 ? "done" : "failed";
    if (o > 0) j["error"] = std::strerror(o);
    actions.push_back(std::move(j));
  }
  json errors = json::array();
  for (const PolicyError& e : r.errors) {
    json j = {{"op", e.op}, {"errno", e.err}, {"message", ErrorText(root, e)}};
    SetPath(&j, "path", PathOf(root, e.path));
    errors.push_back(std::move(j));
  }
  json wm = nullptr;
  if (rules.has_watermarks())
    wm = {{"high_percent", *rules.high_pct},
          {"low_percent", *rules.low_pct},
          {"over_high", r.plan.over_high},
          {"need_bytes", r.plan.need_bytes},
          {"planned_free_bytes", r.plan.planned_free}};
  return {{"root", root},
          {"dry_run", dry_run},
          {"now_ns", r.now_ns},
          {"files", r.files.size()},
          {"skipped", r.skipped},
          {"usage_before", UsageJson(r.before)},
          {"usage_after", UsageJson(r.after)},
          {"watermarks", wm},
          {"actions", actions},
          {"archived", r.archived},
          {"released", r.released},
          {"released_bytes", r.released_bytes},
          {"pinned", r.plan.pinned},
          {"norelease", r.plan.norelease},
          {"unreleasable", r.plan.unreleasable},
          {"lower", r.plan.lower},
          {"errors", errors}};
}

void PrintText(const std::string& root, const PolicyRules& rules, const PolicyRunResult& r,
               bool dry_run) {
  uint64_t archives = 0, releases = 0, freeing = 0;
  for (size_t i = 0; i < r.plan.actions.size(); ++i) {
    const PlannedAction& a = r.plan.actions[i];
    if (!dry_run && r.outcome[i] != 0) continue;  // reported on stderr
    const FileFacts& f = r.files[a.file];
    std::string line = std::string(dry_run ? "would " : "") + PlanOpName(a.op) + " " +
                       ShownName(PathOf(root, f.rel_path), StdoutIsTerminal()) + " (" +
                       HumanBytes(f.size);
    if (a.op != PlanOp::kArchive) {
      line += ", frees " + HumanBytes(a.freeing);
      if (a.keep > 0) line += ", keeps " + HumanBytes(a.keep);
    }
    line += a.watermark ? "; watermark, rule line " : "; rule line ";
    line += std::to_string(a.line) + ")";
    std::printf("%s\n", line.c_str());
    if (a.op != PlanOp::kRelease) archives++;
    if (a.op != PlanOp::kArchive) {
      releases++;
      freeing += a.freeing;
    }
  }
  std::string sum = std::string(dry_run ? "policy check: " : "policy run: ") +
                    std::to_string(r.files.size()) + " files, " +
                    (dry_run ? "would archive " : "archived ") + std::to_string(archives) + ", " +
                    (dry_run ? "would release " : "released ") + std::to_string(releases) + " (" +
                    HumanBytes(freeing) + ")";
  if (r.plan.pinned + r.plan.norelease > 0)
    sum += ", " + std::to_string(r.plan.pinned + r.plan.norelease) + " pinned";
  if (r.plan.unreleasable > 0)
    sum += ", " + std::to_string(r.plan.unreleasable) + " not releasable (dirty, lost or busy)";
  if (r.plan.lower > 0) sum += ", " + std::to_string(r.plan.lower) + " only in lower layers";
  if (r.before) {
    sum += ", usage " + Percent(r.before->percent());
    if (r.after) sum += " -> " + Percent(r.after->percent());
  }
  if (rules.has_watermarks()) {
    sum += " (high " + Percent(*rules.high_pct) + ", low " + Percent(*rules.low_pct) + ")";
  }
  if (!r.errors.empty()) sum += ", " + std::to_string(r.errors.size()) + " failed";
  std::printf("%s\n", sum.c_str());
}

int Run(const std::string& rules_path, const std::string& root, bool dry_run, bool as_json) {
  PolicyRules rules;
  Status s = LoadPolicyRules(rules_path, &rules);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier policy: %s\n",
                 MessageSafe(s.err() == EINVAL ? s.message() : s.ToString()).c_str());
    return 2;
  }
  PolicyRunOptions o;
  o.dry_run = dry_run;
  PolicyRunResult r;
  s = RunPolicy(rules, root, o, &r);
  if (!s.ok()) {
    std::fprintf(stderr, "overtier policy: %s\n", MessageSafe(s.ToString()).c_str());
    return 1;
  }
  for (const PolicyError& e : r.errors)
    std::fprintf(stderr, "overtier: %s\n", MessageSafe(ErrorText(root, e)).c_str());
  if (as_json)
    std::printf("%s\n", JsonText(ResultJson(root, rules, r, dry_run), 2).c_str());
  else
    PrintText(root, rules, r, dry_run);
  return r.errors.empty() ? 0 : 1;
}

}  // namespace

int PolicyCommand(int argc, char** argv) {
  CLI::App app{"Archive and release files of an overtier mount by rules (docs/POLICY.md)",
               "overtier policy"};
  app.require_subcommand(1);
  std::string rules, root;
  bool dry_run = false, as_json = false;
  auto common = [&](CLI::App* sub) {
    sub->add_option("--rules", rules, "the rules file")->required()->type_name("FILE");
    sub->add_flag("--json", as_json, "one JSON object instead of text");
    sub->add_option("DIR", root, "a directory of an overtier mount (its mount point: all of it)")
        ->required();
  };
  CLI::App* run = app.add_subcommand("run", "archive and release what the rules select");
  common(run);
  run->add_flag("--dry-run", dry_run, "only list what would be done (same as check)");
  CLI::App* check = app.add_subcommand("check", "list what `run` would do, doing nothing");
  common(check);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "overtier policy: %s\n", MessageSafe(e.what()).c_str());
    return 2;
  }
  return Run(rules, root, dry_run || check->parsed(), as_json);
}

}  // namespace overtier::cli
