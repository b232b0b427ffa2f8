#include "image/posix_acl.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

namespace overtier {
namespace {

std::string Hex(const std::string& s) {
  static const char* d = "0123456789abcdef";
  std::string h;
  for (unsigned char c : s) {
    h.push_back(d[c >> 4]);
    h.push_back(d[c & 15]);
  }
  return h;
}

// user::rw- user:1234:rw- group::r-- group:77:r-- mask::rw- other::---, in
// another order than the kernel's.
std::vector<PosixAclEntry> FileAcl() {
  return {{kAclOther, 0}, {kAclGroup, 4, 77}, {kAclUser, 6, 1234},
          {kAclMask, 6},  {kAclUserObj, 6},   {kAclGroupObj, 4}};
}

// The bytes are those the kernel gave for `setfacl -m u:1234:rw-,g:77:r--`
// on a 0640 file (getfattr -e hex -n system.posix_acl_access).
TEST(PosixAclTest, EncodesAsTheKernel) {
  std::string v;
  ASSERT_TRUE(EncodePosixAcl(FileAcl(), &v).ok());
  EXPECT_EQ(Hex(v),
            "02000000"
            "01000600ffffffff"
            "02000600d2040000"
            "04000400ffffffff"
            "080004004d000000"
            "10000600ffffffff"
            "20000000ffffffff");
  // An id given to user:: is not kept (the kernel writes 0xffffffff).
  std::vector<PosixAclEntry> acl = {{kAclUserObj, 7, 5}, {kAclGroupObj, 5}, {kAclOther, 5}};
  ASSERT_TRUE(EncodePosixAcl(acl, &v).ok());
  EXPECT_EQ(Hex(v), "0200000001000700ffffffff04000500ffffffff20000500ffffffff");
}

// The kernel takes the value as it is and gives the same bytes back.
TEST(PosixAclTest, KernelAcceptsIt) {
  char tmpl[] = "/tmp/posix-acl-test-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string v;
  ASSERT_TRUE(EncodePosixAcl(FileAcl(), &v).ok());
  int r = setxattr(tmpl, "system.posix_acl_access", v.data(), v.size(), 0);
  int err = errno;
  if (r != 0 && err == EOPNOTSUPP) {
    unlink(tmpl);
    GTEST_SKIP() << "no ACLs on /tmp";
  }
  ASSERT_EQ(r, 0) << strerror(err);
  std::string back(v.size() + 64, '\0');
  ssize_t n = getxattr(tmpl, "system.posix_acl_access", back.data(), back.size());
  unlink(tmpl);
  ASSERT_GT(n, 0);
  back.resize(n);
  EXPECT_EQ(Hex(back), Hex(v));
}

TEST(PosixAclTest, RefusesWhatTheKernelRefuses) {
  auto refused = [](std::vector<PosixAclEntry> acl, const std::string& needle) {
    std::string v = "junk";
    Status s = EncodePosixAcl(std::move(acl), &v);
    EXPECT_EQ(s.err(), EINVAL) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.ToString();
  };
  refused({{kAclUserObj, 6}, {kAclUser, 6, 5}, {kAclGroupObj, 4}, {kAclOther, 0}}, "no mask");
  refused({{kAclUserObj, 6}, {kAclGroupObj, 4}}, "other::");
  refused({{kAclUserObj, 6}, {kAclUserObj, 4}, {kAclGroupObj, 4}, {kAclOther, 0}}, "twice");
  refused({{kAclUserObj, 6},
           {kAclGroup, 6, 5},
           {kAclGroup, 4, 5},
           {kAclMask, 6},
           {kAclGroupObj, 4},
           {kAclOther, 0}},
          "id 5 twice");
  refused({{kAclUserObj, 6},
           {kAclUser, 6, kAclUndefinedId},
           {kAclMask, 6},
           {kAclGroupObj, 4},
           {kAclOther, 0}},
          "no id");
  refused({{kAclUserObj, 8}, {kAclGroupObj, 4}, {kAclOther, 0}}, "beyond rwx");
  refused({{0x40, 0}, {kAclUserObj, 6}, {kAclGroupObj, 4}, {kAclOther, 0}}, "tag 64");
  std::vector<PosixAclEntry> huge = {
      {kAclUserObj, 6}, {kAclGroupObj, 4}, {kAclOther, 0}, {kAclMask, 7}};
  for (uint32_t i = 0; i < 9000; i++) huge.push_back({kAclUser, 4, i});
  refused(huge, "larger than an xattr");
  // A mask without named entries is an ACL (the kernel keeps it).
  std::string v;
  EXPECT_TRUE(
      EncodePosixAcl({{kAclUserObj, 6}, {kAclGroupObj, 4}, {kAclMask, 0}, {kAclOther, 0}}, &v)
          .ok());
}

TEST(PosixAclTest, ResolvesNames) {
  uint32_t id = 99;
  ASSERT_TRUE(ResolveAclName(kAclUser, "root", &id).ok());
  EXPECT_EQ(id, 0u);
  id = 99;
  ASSERT_TRUE(ResolveAclName(kAclGroup, "root", &id).ok());
  EXPECT_EQ(id, 0u);
  Status s = ResolveAclName(kAclUser, "no-such-user-overtier", &id);
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_NE(s.message().find("user 'no-such-user-overtier'"), std::string::npos) << s.ToString();
  EXPECT_EQ(ResolveAclName(kAclGroup, "no-such-group-overtier", &id).err(), ENOENT);
}

}  // namespace
}  // namespace overtier
