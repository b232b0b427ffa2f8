#include "union/caller.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "union/union_fs.h"

namespace overtier {

bool CallerCreds::InGroup(gid_t gid) const {
  return std::find(groups.begin(), groups.end(), gid) != groups.end();
}

CallerCreds ReadCallerCreds(const Ctx& ctx, const std::vector<IdMapping>& gidmap) {
  CallerCreds c;
  c.groups.push_back(MapIdToDisk(gidmap, ctx.gid));
  std::ifstream in;
  if (ctx.pid > 0) in.open("/proc/" + std::to_string(ctx.pid) + "/status");
  if (!in.is_open()) {
    c.cap_fsetid = ctx.uid == 0;
    return c;
  }
  constexpr int kCapFsetid = 4;  // <linux/capability.h>
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("Groups:")) {
      std::istringstream groups(line.substr(7));
      uint32_t g;
      while (groups >> g) c.groups.push_back(MapIdToDisk(gidmap, g));
    } else if (line.starts_with("CapEff:")) {
      uint64_t caps = std::strtoull(line.c_str() + 7, nullptr, 16);
      c.cap_fsetid = (caps & (uint64_t{1} << kCapFsetid)) != 0;
    }
  }
  return c;
}

bool CallerInGroupOrCapable(const Ctx& ctx, const std::vector<IdMapping>& gidmap, gid_t gid) {
  if (MapIdToDisk(gidmap, ctx.gid) == gid) return true;  // no need to read /proc
  CallerCreds c = ReadCallerCreds(ctx, gidmap);
  return c.cap_fsetid || c.InGroup(gid);
}

mode_t SuidSgidToDrop(mode_t mode, bool cap_fsetid, bool in_group) {
  if (!S_ISREG(mode) || cap_fsetid) return 0;
  mode_t drop = mode & S_ISUID;
  if ((mode & S_ISGID) && ((mode & S_IXGRP) || !in_group)) drop |= S_ISGID;
  return drop;
}

}  // namespace overtier
