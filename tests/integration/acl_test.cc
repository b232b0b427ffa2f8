// POSIX ACLs through the union: the kernel enforces them (FUSE_POSIX_ACL,
// like the kernel overlayfs), on lower files and after copy-up; setfacl
// through the mount works at once; chmod updates the mask; new objects
// inherit a directory's default ACL instead of getting the umask, and get
// the umask where there is none; noacl turns enforcement off; an id-mapped
// mount maps the ids in ACL entries. The users are uid/gid 1000..1003,
// which need no passwd entries (RunAs and RunArgs set the ids directly).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "harness.h"
#include "test_util.h"

namespace overtier::it {
namespace {

constexpr uid_t kAlice = 1000;  // named in the ACLs
constexpr uid_t kBob = 1001;    // named in some, else "other"
constexpr uid_t kCarol = 1002;  // never named

// getfacl's lines for path (numeric ids, no header, effective rights
// shown where the mask cuts them: "user:1000:r--\t#effective:---").
std::vector<std::string> Facl(const std::string& path) {
  Result r = RunArgs({"getfacl", "-n", "-c", "-p", path});
  EXPECT_EQ(r.rc, 0) << "getfacl " << path << "\n" << Describe(r);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < r.out.size()) {
    size_t nl = r.out.find('\n', pos);
    if (nl == std::string::npos) nl = r.out.size();
    if (nl > pos) lines.push_back(r.out.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

::testing::AssertionResult HasLine(const std::vector<std::string>& lines, const std::string& l) {
  for (const auto& x : lines)
    if (x == l) return ::testing::AssertionSuccess();
  std::string all;
  for (const auto& x : lines) all += "  " + x + "\n";
  return ::testing::AssertionFailure() << "no line '" << l << "' in:\n" << all;
}

// setfacl ARGS... as uid (root when -1); true when it succeeded.
bool SetFacl(std::vector<std::string> args, uid_t uid = static_cast<uid_t>(-1)) {
  args.insert(args.begin(), "setfacl");
  Result r = RunArgs(args, uid);
  if (r.rc != 0 && uid == static_cast<uid_t>(-1)) ADD_FAILURE() << Describe(r);
  return r.rc == 0;
}

mode_t Perms(const std::string& path) { return Lstat(path).st_mode & 07777; }

class AclTest : public UnionFsTest {
 protected:
  // open(path, flags) as uid (gid the same, no other groups).
  Errno OpenAs(uid_t uid, int flags, const std::string& path) {
    return Errno{RunAs(uid, uid, [&] {
      int fd = open(path.c_str(), flags);
      if (fd < 0) return errno;
      close(fd);
      return 0;
    })};
  }

  // A root-owned 0600 file in the top lower layer that kAlice may read
  // through a named-user entry (`setfacl -m u:1000:r`).
  void LowerFileForAlice(const std::string& rel) {
    WriteFile(L(0, rel), "secret", 0600);
    ASSERT_TRUE(SetFacl({"-m", "u:" + std::to_string(kAlice) + ":r", L(0, rel)}));
    ASSERT_EQ(Perms(L(0, rel)), 0640u) << "the group bits show the mask";
  }
};

TEST_F(AclTest, NamedUserEntryOfALowerFileIsEnforced) {
  ASSERT_NO_FATAL_FAILURE(LowerFileForAlice("f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  EXPECT_EQ(OpenAs(kAlice, O_RDONLY, M("f")), kOk);
  EXPECT_EQ(OpenAs(kAlice, O_WRONLY, M("f")), Errno{EACCES}) << "the entry grants read only";
  EXPECT_EQ(OpenAs(kBob, O_RDONLY, M("f")), Errno{EACCES});
  EXPECT_TRUE(HasLine(Facl(M("f")), "user:1000:r--"));
  EXPECT_EQ(Perms(M("f")), 0640u);
  EXPECT_FALSE(Exists(U("f"))) << "checking and reading ACLs copies nothing up";
}

TEST_F(AclTest, ChmodCopiesUpWithTheAclAndUpdatesTheMask) {
  ASSERT_NO_FATAL_FAILURE(LowerFileForAlice("f"));
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(OpenAs(kAlice, O_RDONLY, M("f")), kOk);  // the kernel has the ACL cached now
  ASSERT_EQ(chmod(M("f").c_str(), 0600), 0);
  ASSERT_TRUE(Exists(U("f")));
  for (const std::string& p : {M("f"), U("f")}) {
    auto lines = Facl(p);
    EXPECT_TRUE(HasLine(lines, "user:1000:r--\t#effective:---")) << p;
    EXPECT_TRUE(HasLine(lines, "mask::---")) << p;
  }
  EXPECT_EQ(OpenAs(kAlice, O_RDONLY, M("f")), Errno{EACCES}) << "the mask cuts the entry";
  ASSERT_EQ(chmod(M("f").c_str(), 0640), 0);
  EXPECT_TRUE(HasLine(Facl(M("f")), "mask::r--"));
  EXPECT_EQ(OpenAs(kAlice, O_RDONLY, M("f")), kOk);
  EXPECT_EQ(OpenAs(kBob, O_RDONLY, M("f")), Errno{EACCES});
  EXPECT_EQ(ReadFile(M("f")), "secret");
}

// As the kernel: an access ACL set by an owner outside the file's group
// clears its set-group-ID bit; one set by an owner in the group keeps it.
TEST_F(AclTest, AclSetByAnOwnerOutsideTheGroupClearsSetgid) {
  WriteFile(L(0, "out"), "x", 0644);
  Chown(L(0, "out"), kAlice, 2000);
  ASSERT_EQ(chmod(L(0, "out").c_str(), 02664), 0);
  WriteFile(L(0, "in"), "x", 0644);
  Chown(L(0, "in"), kAlice, kAlice);
  ASSERT_EQ(chmod(L(0, "in").c_str(), 02664), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_TRUE(SetFacl({"-m", "u:1001:r", M("out")}, kAlice));
  EXPECT_EQ(Perms(M("out")), 0664u) << "set-group-ID cleared";
  ASSERT_TRUE(SetFacl({"-m", "u:1001:r", M("in")}, kAlice));
  EXPECT_EQ(Perms(M("in")), 02664u) << "the owner is in the group: kept";
}

// The privilege that keeps the bit is CAP_FSETID, not uid 0: root without
// it (a container's reduced capability set) clears it too; root with it
// keeps it.
TEST_F(AclTest, RootWithoutCapFsetidClearsSetgidToo) {
  WriteFile(L(0, "f"), "x", 0644);
  Chown(L(0, "f"), kAlice, 2000);
  ASSERT_EQ(chmod(L(0, "f").c_str(), 02664), 0);
  WriteFile(L(0, "g"), "x", 0644);
  Chown(L(0, "g"), kAlice, 2000);
  ASSERT_EQ(chmod(L(0, "g").c_str(), 02664), 0);
  ASSERT_NO_FATAL_FAILURE(Mount());
  Result r = RunArgs({"setpriv", "--inh-caps=-fsetid", "--bounding-set=-fsetid", "--", "setfacl",
                      "-m", "u:1001:r", M("f")});
  ASSERT_EQ(r.rc, 0) << Describe(r);
  EXPECT_EQ(Perms(M("f")), 0664u) << "root without CAP_FSETID: cleared";
  ASSERT_TRUE(SetFacl({"-m", "u:1001:r", M("g")}));
  EXPECT_EQ(Perms(M("g")), 02664u) << "root with CAP_FSETID: kept";
}

TEST_F(AclTest, OwnerSetsAndRemovesAnEntryThroughTheMount) {
  WriteFile(L(0, "f"), "alice's", 0600);
  Chown(L(0, "f"), kAlice, kAlice);
  ASSERT_NO_FATAL_FAILURE(Mount());
  ASSERT_EQ(OpenAs(kBob, O_RDONLY, M("f")), Errno{EACCES});  // cached: no ACL
  ASSERT_TRUE(SetFacl({"-m", "u:1001:r", M("f")}, kAlice));
  EXPECT_EQ(OpenAs(kBob, O_RDONLY, M("f")), kOk) << "enforced at once";
  EXPECT_EQ(OpenAs(kCarol, O_RDONLY, M("f")), Errno{EACCES});
  EXPECT_EQ(Perms(M("f")), 0640u) << "the upper file system set the group bits to the mask";
  EXPECT_TRUE(HasLine(Facl(U("f")), "user:1001:r--")) << "set on the copied-up file";

  EXPECT_FALSE(SetFacl({"-m", "u:1001:rw", M("f")}, kBob)) << "only the owner may";
  EXPECT_TRUE(HasLine(Facl(M("f")), "user:1001:r--"));

  ASSERT_TRUE(SetFacl({"-x", "u:1001", M("f")}, kAlice));
  EXPECT_EQ(OpenAs(kBob, O_RDONLY, M("f")), Errno{EACCES});
  ASSERT_TRUE(SetFacl({"-b", M("f")}, kAlice));
  EXPECT_EQ(GetXattr(M("f"), "system.posix_acl_access"), std::nullopt);
  EXPECT_EQ(OpenAs(kAlice, O_RDWR, M("f")), kOk);
}

TEST_F(AclTest, NewObjectsInheritTheDefaultAclInsteadOfTheUmask) {
  // d (alice's) gives bob rwx in everything made in it.
  MakeDirs(L(0, "d"), 0755);
  WriteFile(L(0, "d/old"), "x", 0644);  // recreated over its whiteout
  MakeDirs(L(0, "d/olddir"), 0755);
  Chown(L(0, "d"), kAlice, kAlice);
  Chown(L(0, "d/old"), kAlice, kAlice);
  Chown(L(0, "d/olddir"), kAlice, kAlice);
  ASSERT_TRUE(SetFacl({"-d", "-m", "u:1001:rwx", L(0, "d")}));
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string d = M("d");
  int rc = RunAs(kAlice, kAlice, [&] {
    umask(077);
    for (const std::string f : {"/f", "/old"}) {
      if (f == "/old" && unlink((d + f).c_str()) != 0) return 100 + errno;
      int fd = open((d + f).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0666);
      if (fd < 0) return 200 + errno;
      close(fd);
    }
    if (rmdir((d + "/olddir").c_str()) != 0) return 300 + errno;
    for (const std::string s : {"/sub", "/olddir"})
      if (mkdir((d + s).c_str(), 0777) != 0) return 400 + errno;
    return 0;
  });
  ASSERT_EQ(rc, 0);
  // POSIX.1e: a file made with mode 0666 gets the default ACL masked by
  // the mode (mask rw-, other r--) and mode 0664; the umask plays no part.
  for (const std::string f : {"d/f", "d/old"}) {
    EXPECT_EQ(Perms(M(f)), 0664u) << f;
    auto lines = Facl(M(f));
    EXPECT_TRUE(HasLine(lines, "user:1001:rwx\t#effective:rw-")) << f;
    EXPECT_TRUE(HasLine(lines, "mask::rw-")) << f;
    EXPECT_TRUE(HasLine(lines, "other::r--")) << f;
    EXPECT_EQ(OpenAs(kBob, O_RDWR, M(f)), kOk) << f;
    EXPECT_EQ(OpenAs(kCarol, O_RDWR, M(f)), Errno{EACCES}) << f;
  }
  // A directory takes the default ACL as its own default too.
  for (const std::string s : {"d/sub", "d/olddir"}) {
    EXPECT_EQ(Perms(M(s)), 0775u) << s;
    auto lines = Facl(M(s));
    EXPECT_TRUE(HasLine(lines, "user:1001:rwx")) << s;
    EXPECT_TRUE(HasLine(lines, "default:user:1001:rwx")) << s;
  }
  EXPECT_TRUE(HasLine(Facl(U("d")), "default:user:1001:rwx")) << "copied up with d";
}

TEST_F(AclTest, WithoutADefaultAclTheCallersUmaskApplies) {
  MakeDirs(L(0, "d"), 0777);
  WriteFile(L(0, "d/old"), "x", 0600);
  ASSERT_NO_FATAL_FAILURE(Mount());
  const std::string d = M("d");
  for (mode_t mask : {022, 077}) {
    const std::string sfx = std::to_string(mask);
    int rc = RunAs(kAlice, kAlice, [&] {
      umask(mask);
      int fd = open((d + "/f" + sfx).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0666);
      if (fd < 0) return 100 + errno;
      close(fd);
      if (mkdir((d + "/s" + sfx).c_str(), 0777) != 0) return 200 + errno;
      if (mknod((d + "/p" + sfx).c_str(), S_IFIFO | 0666, 0) != 0) return 300 + errno;
      if (mask == 022) {  // over a whiteout
        if (unlink((d + "/old").c_str()) != 0) return 400 + errno;
        fd = open((d + "/old").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0666);
        if (fd < 0) return 500 + errno;
        close(fd);
      }
      return 0;
    });
    ASSERT_EQ(rc, 0) << "umask " << sfx;
    EXPECT_EQ(Perms(M("d/f" + sfx)), 0666u & ~mask);
    EXPECT_EQ(Perms(M("d/s" + sfx)), 0777u & ~mask);
    EXPECT_EQ(Perms(M("d/p" + sfx)), 0666u & ~mask);
    EXPECT_EQ(GetXattr(M("d/f" + sfx), "system.posix_acl_access"), std::nullopt);
  }
  EXPECT_EQ(Perms(M("d/old")), 0644u);
}

TEST_F(AclTest, NoaclStoresAclsWithoutEnforcingThem) {
  if (IsKernel()) GTEST_SKIP() << "noacl is an overtier (fuse-overlayfs) option";
  ASSERT_NO_FATAL_FAILURE(LowerFileForAlice("f"));
  MountConfig c;
  c.overtier_opts = "noacl";
  ASSERT_NO_FATAL_FAILURE(Mount(c));
  EXPECT_EQ(OpenAs(kAlice, O_RDONLY, M("f")), Errno{EACCES}) << "mode bits only";
  EXPECT_TRUE(HasLine(Facl(M("f")), "user:1000:r--"));
}

TEST_F(AclTest, IdMappedMountMapsTheIdsInAclEntries) {
  if (IsKernel()) GTEST_SKIP() << "uidmapping= is an overtier (fuse-overlayfs) option";
  // Through the mount ids 1000.. are 5000.. on disk; 0..999 are themselves.
  WriteFile(L(0, "f"), "secret", 0600);
  ASSERT_TRUE(SetFacl({"-m", "u:5000:r,g:5001:r", L(0, "f")}));
  MountConfig c;
  c.overtier_opts = "uidmapping=0:0:1000:5000:1000:1000,gidmapping=0:0:1000:5000:1000:1000";
  ASSERT_NO_FATAL_FAILURE(Mount(c));
  auto lines = Facl(M("f"));
  EXPECT_TRUE(HasLine(lines, "user:1000:r--"));
  EXPECT_TRUE(HasLine(lines, "group:1001:r--"));
  EXPECT_EQ(OpenAs(kAlice, O_RDONLY, M("f")), kOk);
  EXPECT_EQ(OpenAs(kBob, O_RDONLY, M("f")), kOk) << "through the group entry";
  EXPECT_EQ(OpenAs(kCarol, O_RDONLY, M("f")), Errno{EACCES});

  ASSERT_TRUE(SetFacl({"-m", "u:1003:rw", M("f")}));
  EXPECT_TRUE(HasLine(Facl(M("f")), "user:1003:rw-"));
  auto disk = Facl(U("f"));
  EXPECT_TRUE(HasLine(disk, "user:5003:rw-"));
  EXPECT_TRUE(HasLine(disk, "user:5000:r--"));
  EXPECT_TRUE(HasLine(disk, "group:5001:r--"));
  EXPECT_EQ(OpenAs(1003, O_RDWR, M("f")), kOk);
}

}  // namespace
}  // namespace overtier::it
