// The control ABI (include/overtier/control.h) is shared with the kernel's
// FUSE ioctl path and with other programs: its sizes and offsets are fixed
// by docs/FORMAT.md ("Migration") and must never move.
#include "overtier/control.h"

#include <cstddef>
#include <set>

#include <gtest/gtest.h>

#include "store/catalog_records.h"

namespace overtier {
namespace {

static_assert(sizeof(overtier_ctl_request) == 64);
static_assert(offsetof(overtier_ctl_request, version) == 0);
static_assert(offsetof(overtier_ctl_request, flags) == 4);
static_assert(offsetof(overtier_ctl_request, offset) == 8);
static_assert(offsetof(overtier_ctl_request, length) == 16);
static_assert(offsetof(overtier_ctl_request, generation) == 24);
static_assert(offsetof(overtier_ctl_request, reserved) == 32);

static_assert(sizeof(overtier_ctl_archived) == 96);
static_assert(offsetof(overtier_ctl_archived, copies) == 4);
static_assert(offsetof(overtier_ctl_archived, generation) == 8);
static_assert(offsetof(overtier_ctl_archived, archive_size) == 16);
static_assert(offsetof(overtier_ctl_archived, bfid) == 24);
static_assert(offsetof(overtier_ctl_archived, atime_ns) == 40);
static_assert(offsetof(overtier_ctl_archived, mtime_ns) == 48);
static_assert(offsetof(overtier_ctl_archived, reserved) == 56);

static_assert(sizeof(overtier_ctl_state) == 160);
static_assert(offsetof(overtier_ctl_state, state) == 4);
static_assert(offsetof(overtier_ctl_state, mig_flags) == 8);
static_assert(offsetof(overtier_ctl_state, nranges) == 12);
static_assert(offsetof(overtier_ctl_state, size) == 16);
static_assert(offsetof(overtier_ctl_state, archive_size) == 24);
static_assert(offsetof(overtier_ctl_state, barrier) == 32);
static_assert(offsetof(overtier_ctl_state, resident_bytes) == 40);
static_assert(offsetof(overtier_ctl_state, generation) == 48);
static_assert(offsetof(overtier_ctl_state, bfid) == 56);
static_assert(offsetof(overtier_ctl_state, atime_ns) == 72);
static_assert(offsetof(overtier_ctl_state, mtime_ns) == 80);
static_assert(offsetof(overtier_ctl_state, archive_time_ns) == 88);
static_assert(offsetof(overtier_ctl_state, restore_time_ns) == 96);
static_assert(offsetof(overtier_ctl_state, reserved) == 104);

// The flag bits are the catalog's, so the daemon copies them unchanged.
static_assert(OVERTIER_MIG_ARCHIVED == kMigArchived);
static_assert(OVERTIER_MIG_RELEASED == kMigReleased);
static_assert(OVERTIER_MIG_DIRTY == kMigDirty);
static_assert(OVERTIER_MIG_LOST == kMigLost);
static_assert(OVERTIER_MIG_ARCHIVE_IN_PROGRESS == kMigArchiveInProgress);
static_assert(OVERTIER_MIG_RESTORE_IN_PROGRESS == kMigRestoreInProgress);
static_assert(OVERTIER_MIG_ON_DEMAND == kMigOnDemand);

// The numbers themselves, as documented (x86-64 / generic ioctl encoding).
static_assert(OVERTIER_IOC_GET_STATE == 0xc0a04f01u);
static_assert(OVERTIER_IOC_ARCHIVE_BEGIN == 0x40404f02u);
static_assert(OVERTIER_IOC_SET_ARCHIVED == 0x40604f03u);
static_assert(OVERTIER_IOC_RESTORE == 0x40404f0bu);

struct Cmd {
  unsigned long nr;
  unsigned dir;
  size_t size;
};

TEST(ControlAbiTest, CommandsAreDistinctRestrictedIoctlsOfTypeO) {
  const Cmd cmds[] = {
      {OVERTIER_IOC_GET_STATE, _IOC_READ | _IOC_WRITE, sizeof(overtier_ctl_state)},
      {OVERTIER_IOC_ARCHIVE_BEGIN, _IOC_WRITE, sizeof(overtier_ctl_request)},
      {OVERTIER_IOC_SET_ARCHIVED, _IOC_WRITE, sizeof(overtier_ctl_archived)},
      {OVERTIER_IOC_ARCHIVE_ABORT, _IOC_WRITE, sizeof(overtier_ctl_request)},
      {OVERTIER_IOC_SET_NONRESIDENT, _IOC_WRITE, sizeof(overtier_ctl_request)},
      {OVERTIER_IOC_RESTORE_BEGIN, _IOC_WRITE, sizeof(overtier_ctl_request)},
      {OVERTIER_IOC_MOVE_BARRIER, _IOC_WRITE, sizeof(overtier_ctl_request)},
      {OVERTIER_IOC_RESTORE_DONE, _IOC_WRITE, sizeof(overtier_ctl_request)},
      {OVERTIER_IOC_ARCHIVE, _IOC_WRITE, sizeof(overtier_ctl_request)},
      {OVERTIER_IOC_RELEASE, _IOC_WRITE, sizeof(overtier_ctl_request)},
      {OVERTIER_IOC_RESTORE, _IOC_WRITE, sizeof(overtier_ctl_request)},
  };
  std::set<unsigned long> numbers;
  for (const Cmd& c : cmds) {
    EXPECT_EQ(_IOC_TYPE(c.nr), static_cast<unsigned>('O')) << std::hex << c.nr;
    EXPECT_EQ(_IOC_DIR(c.nr), c.dir) << std::hex << c.nr;
    EXPECT_EQ(_IOC_SIZE(c.nr), c.size) << std::hex << c.nr;
    EXPECT_TRUE(numbers.insert(_IOC_NR(c.nr)).second) << "duplicate " << _IOC_NR(c.nr);
  }
  EXPECT_EQ(numbers.size(), 11u);
  EXPECT_EQ(*numbers.begin(), 1u);
  EXPECT_EQ(*numbers.rbegin(), 11u);
}

}  // namespace
}  // namespace overtier
