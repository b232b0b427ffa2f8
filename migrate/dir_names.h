// Listing one directory for the walks through a mount (the policy engine,
// migrate/policy_engine.cc, and the commands of tools/cmd_migrate.cc).
#ifndef OVERTIER_MIGRATE_DIR_NAMES_H_
#define OVERTIER_MIGRATE_DIR_NAMES_H_

#include <string>
#include <vector>

namespace overtier {

// Sets *names to the names in the directory open as `fd` (without . and
// ..), sorted, so that a walk (its output, its errors, a policy's plan)
// comes in a stable order. `fd` stays open (the listing reads through a
// duplicate of it) and is read from its start whatever was read through it
// before. Returns 0 or an errno; on a readdir error *names holds the names
// read until then.
int ReadDirNames(int fd, std::vector<std::string>* names);

}  // namespace overtier

#endif  // OVERTIER_MIGRATE_DIR_NAMES_H_
