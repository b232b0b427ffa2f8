// What the control client does without a mount: how requests are built and
// how a refusal comes back. The ioctls' effects on a mount are covered by
// tests/migrate_cli and tests/policy.
#include "migrate/control_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <gtest/gtest.h>

#include "store/vv_testutil.h"

namespace overtier::control {
namespace {

TEST(ControlClient, RequestIsVersionedAndZeroed) {
  const overtier_ctl_request r = Request(OVERTIER_CTL_WAIT | OVERTIER_CTL_RANGE_ONLY, 4096, 8192);
  EXPECT_EQ(r.version, OVERTIER_CTL_VERSION);
  EXPECT_EQ(r.flags, OVERTIER_CTL_WAIT | OVERTIER_CTL_RANGE_ONLY);
  EXPECT_EQ(r.offset, 4096u);
  EXPECT_EQ(r.length, 8192u);
  // The daemon refuses a request with any of these set.
  EXPECT_EQ(r.generation, 0u);
  for (uint64_t v : r.reserved) EXPECT_EQ(v, 0u);
  EXPECT_EQ(Request(0, 7).length, 0u);  // RESTORE: 0 is "to the end"
}

// Outside an overtier mount every command is ENOTTY, which the callers
// turn into "not on an overtier mount": it must come back as the errno,
// not as success nor as "already archived".
TEST(ControlClient, NotAMountIsEnotty) {
  test::TempDir dir;
  const std::string path = dir.path() + "/plain";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  overtier_ctl_state st;
  st.state = 77;
  EXPECT_EQ(GetState(fd, &st), ENOTTY);
  EXPECT_EQ(st.version, OVERTIER_CTL_VERSION);
  EXPECT_EQ(st.state, 0u);  // zeroed before the ioctl
  EXPECT_EQ(Ioctl(fd, OVERTIER_IOC_RESTORE, Request(OVERTIER_CTL_WAIT, 0)), ENOTTY);
  EXPECT_EQ(Release(fd, 4096), ENOTTY);
  for (bool release : {false, true}) {
    bool already = true;
    EXPECT_EQ(Archive(fd, release, 4096, &already), ENOTTY) << release;
    EXPECT_FALSE(already) << release;
  }
  close(fd);
}

}  // namespace
}  // namespace overtier::control
