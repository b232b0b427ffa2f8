#include "union/params.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace overtier {
namespace {

::testing::AssertionResult HasSubstr(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// ---------------------------------------------------------------------------
// Command line and option string parsing
// ---------------------------------------------------------------------------

Status Parse(const std::vector<std::string>& args, Invocation* inv) {
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return ParseMountCommandLine(static_cast<int>(args.size()), argv.data(), inv);
}

Status ParseOpt(const std::string& text, MountOptions* opts) {
  return ParseMountOptionString(text, opts);
}

// The lowers as people write them ("image:NAME" or the path).
std::vector<std::string> Lowers(const MountOptions& o) {
  std::vector<std::string> out;
  for (const LowerDir& l : o.lowerdirs) out.push_back(l.Describe());
  return out;
}

TEST(ParseCommandLine, ContainersStorageReadWrite) {
  Invocation inv;
  Status s = Parse({"overtier", "-o",
                    "lowerdir=/G/overlay/l/A:/G/overlay/l/B,upperdir=/G/overlay/ID/diff,"
                    "workdir=/G/overlay/ID/work,,volatile",
                    "/G/overlay/ID/merged"},
                   &inv);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lowers(inv.opts), (std::vector<std::string>{"/G/overlay/l/A", "/G/overlay/l/B"}));
  EXPECT_EQ(inv.opts.upperdir, "/G/overlay/ID/diff");
  EXPECT_EQ(inv.opts.workdir, "/G/overlay/ID/work");
  EXPECT_TRUE(inv.opts.is_volatile);
  EXPECT_FALSE(inv.opts.read_only);
  EXPECT_EQ(inv.mountpoint, "/G/overlay/ID/merged");
  EXPECT_FALSE(inv.foreground);
  EXPECT_FALSE(inv.debug);
  EXPECT_FALSE(inv.show_help);
  EXPECT_FALSE(inv.show_version);
  EXPECT_TRUE(inv.opts.ignored.empty());
  EXPECT_TRUE(inv.opts.uidmap.empty());
  EXPECT_EQ(inv.opts.fsname, "overtier");
}

TEST(ParseCommandLine, ContainersStorageReadOnly) {
  Invocation inv;
  Status s = Parse({"/usr/bin/overtier", "-o", "lowerdir=/G/l/A:/G/l/B", "/target"}, &inv);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lowers(inv.opts), (std::vector<std::string>{"/G/l/A", "/G/l/B"}));
  EXPECT_TRUE(inv.opts.upperdir.empty());
  EXPECT_TRUE(inv.opts.workdir.empty());
  EXPECT_FALSE(inv.opts.is_volatile);
  EXPECT_EQ(inv.mountpoint, "/target");
}

TEST(ParseCommandLine, ContainersStorageWithIdMappings) {
  Invocation inv;
  Status s = Parse({"overtier", "-o",
                    "lowerdir=/l/A,upperdir=/u,workdir=/w,uidmapping=:0:100000:65536,"
                    "gidmapping=:0:100000:65536",
                    "/m"},
                   &inv);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(inv.opts.uidmap.size(), 1u);
  // ContainerID:HostID:Size: the image's root (0 on disk) is the
  // container's root, host id 100000, through the mount.
  EXPECT_EQ(inv.opts.uidmap[0].disk, 0u);
  EXPECT_EQ(inv.opts.uidmap[0].mount, 100000u);
  EXPECT_EQ(inv.opts.uidmap[0].count, 65536u);
  ASSERT_EQ(inv.opts.gidmap.size(), 1u);
  EXPECT_EQ(inv.opts.gidmap[0].mount, 100000u);
}

TEST(ParseCommandLine, MountWordIsSkipped) {
  Invocation inv;
  ASSERT_TRUE(Parse({"overtier", "mount", "-o", "lowerdir=/a", "/m"}, &inv).ok());
  EXPECT_EQ(inv.mountpoint, "/m");
  EXPECT_EQ(Lowers(inv.opts), std::vector<std::string>{"/a"});
}

TEST(ParseCommandLine, ArgvZeroMountWord) {
  // The caller may hand over argv starting at the "mount" word.
  Invocation inv;
  ASSERT_TRUE(Parse({"mount", "-o", "lowerdir=/a", "/m"}, &inv).ok());
  EXPECT_EQ(inv.mountpoint, "/m");
}

TEST(ParseCommandLine, MountWordOnlyAtArgvOne) {
  // A second "mount" is a (relative) mount point, not the command word.
  Invocation inv;
  ASSERT_TRUE(Parse({"overtier", "mount", "-o", "lowerdir=/a", "mount"}, &inv).ok());
  EXPECT_EQ(inv.mountpoint, "mount");
}

TEST(ParseCommandLine, ForegroundAndDebug) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-f", "-o", "lowerdir=/a", "/m"}, &inv).ok());
  EXPECT_TRUE(inv.foreground);
  EXPECT_FALSE(inv.debug);

  ASSERT_TRUE(Parse({"p", "-d", "-o", "lowerdir=/a", "/m"}, &inv).ok());
  EXPECT_TRUE(inv.debug);
  EXPECT_TRUE(inv.foreground) << "-d implies -f";
}

TEST(ParseCommandLine, ResetsInvocation) {
  Invocation inv;
  inv.foreground = true;
  inv.opts.lowerdirs = {LowerDir::Dir("/stale")};
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/a", "/m"}, &inv).ok());
  EXPECT_FALSE(inv.foreground);
  EXPECT_EQ(Lowers(inv.opts), std::vector<std::string>{"/a"});
}

TEST(ParseCommandLine, AttachedOptionArgument) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-olowerdir=/a:/b,ro", "/m"}, &inv).ok());
  EXPECT_EQ(Lowers(inv.opts), (std::vector<std::string>{"/a", "/b"}));
  EXPECT_TRUE(inv.opts.read_only);
}

TEST(ParseCommandLine, SeveralDashOAreJoined) {
  Invocation inv;
  Status s = Parse(
      {"p", "-o", "lowerdir=/a", "-o", "upperdir=/u", "-oworkdir=/w", "-o", "allow_other", "/m"},
      &inv);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lowers(inv.opts), std::vector<std::string>{"/a"});
  EXPECT_EQ(inv.opts.upperdir, "/u");
  EXPECT_EQ(inv.opts.workdir, "/w");
  EXPECT_TRUE(inv.opts.allow_other);
}

TEST(ParseCommandLine, OptionsAfterMountpoint) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "/m", "-o", "lowerdir=/a", "-f"}, &inv).ok());
  EXPECT_EQ(inv.mountpoint, "/m");
  EXPECT_TRUE(inv.foreground);
}

TEST(ParseCommandLine, DoubleDashEndsOptions) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/a", "--", "-odd-dir"}, &inv).ok());
  EXPECT_EQ(inv.mountpoint, "-odd-dir");
}

TEST(ParseCommandLine, VersionAndHelp) {
  for (const char* flag : {"--version", "-V"}) {
    Invocation inv;
    ASSERT_TRUE(Parse({"p", flag}, &inv).ok()) << flag;
    EXPECT_TRUE(inv.show_version) << flag;
    EXPECT_FALSE(inv.show_help) << flag;
  }
  for (const char* flag : {"--help", "-h"}) {
    Invocation inv;
    ASSERT_TRUE(Parse({"p", flag}, &inv).ok()) << flag;
    EXPECT_TRUE(inv.show_help) << flag;
    EXPECT_FALSE(inv.show_version) << flag;
  }
}

TEST(ParseCommandLine, HelpWinsOverOtherErrors) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-o", "bogus", "-x", "a", "b", "--help"}, &inv).ok());
  EXPECT_TRUE(inv.show_help);
  ASSERT_TRUE(Parse({"p", "mount", "--version"}, &inv).ok());
  EXPECT_TRUE(inv.show_version);
}

TEST(ParseCommandLine, MissingMountpoint) {
  Invocation inv;
  Status s = Parse({"p", "-o", "lowerdir=/a"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(), "missing mount point");
  EXPECT_EQ(Parse({"p"}, &inv).message(), "missing mount point");
  EXPECT_EQ(Parse({"p", "mount"}, &inv).message(), "missing mount point");
  EXPECT_EQ(ParseMountCommandLine(0, nullptr, &inv).message(), "missing mount point");
}

TEST(ParseCommandLine, TwoMountpoints) {
  Invocation inv;
  Status s = Parse({"p", "-o", "lowerdir=/a", "/m1", "/m2"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "unexpected argument '/m2'"));
  EXPECT_TRUE(HasSubstr(s.message(), "'/m1'"));
}

TEST(ParseCommandLine, EmptyMountpoint) {
  Invocation inv;
  EXPECT_EQ(Parse({"p", "-o", "lowerdir=/a", ""}, &inv).message(), "mount point is empty");
}

TEST(ParseCommandLine, DashOWithoutArgument) {
  Invocation inv;
  Status s = Parse({"p", "/m", "-o"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(), "'-o' needs an option list");
}

TEST(ParseCommandLine, UnknownArgument) {
  Invocation inv;
  Status s = Parse({"p", "-o", "lowerdir=/a", "-s", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(), "unknown argument '-s'");
  EXPECT_EQ(Parse({"p", "-o", "lowerdir=/a", "--foreground", "/m"}, &inv).message(),
            "unknown argument '--foreground'");
}

TEST(ParseCommandLine, UnknownOptionIsReported) {
  Invocation inv;
  Status s = Parse({"p", "-o", "lowerdir=/a,frobnicate", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(), "unknown mount option 'frobnicate'");
}

TEST(ParseCommandLine, FirstErrorIsReported) {
  Invocation inv;
  Status s = Parse({"p", "-o", "one", "-o", "two", "/m"}, &inv);
  EXPECT_EQ(s.message(), "unknown mount option 'one'");
}

TEST(ParseCommandLine, LowerdirRequired) {
  Invocation inv;
  EXPECT_EQ(Parse({"p", "/m"}, &inv).message(), "missing lowerdir= mount option");
  EXPECT_EQ(Parse({"p", "-o", "ro", "/m"}, &inv).message(), "missing lowerdir= mount option");
}

TEST(ParseCommandLine, UpperdirWithoutLowerdir) {
  Invocation inv;
  Status s = Parse({"p", "-o", "upperdir=/u,workdir=/w", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "upperdir needs at least one lowerdir"));
}

TEST(ParseCommandLine, UpperdirNeedsWorkdir) {
  Invocation inv;
  EXPECT_EQ(Parse({"p", "-o", "lowerdir=/a,upperdir=/u", "/m"}, &inv).message(),
            "upperdir= needs workdir= as well");
  EXPECT_EQ(Parse({"p", "-o", "lowerdir=/a,workdir=/w", "/m"}, &inv).message(),
            "workdir= needs upperdir= as well");
}

TEST(ParseCommandLine, FsnameDefaultAndExplicit) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/a", "/m"}, &inv).ok());
  EXPECT_EQ(inv.opts.fsname, "overtier");
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/a,fsname=my\\,fs", "/m"}, &inv).ok());
  EXPECT_EQ(inv.opts.fsname, "my,fs");
}

TEST(ParseOptions, Defaults) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("", &o).ok());
  EXPECT_TRUE(o.lowerdirs.empty());
  EXPECT_FALSE(o.read_only);
  EXPECT_TRUE(o.default_permissions);
  EXPECT_TRUE(o.acl);
  EXPECT_TRUE(o.suid);
  EXPECT_TRUE(o.dev);
  EXPECT_TRUE(o.exec);
  EXPECT_FALSE(o.noatime);
  EXPECT_DOUBLE_EQ(o.timeout, 1.0);
  EXPECT_TRUE(o.fsname.empty());
}

TEST(ParseOptions, EmptyOptionsAreIgnored) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt(",,,", &o).ok());
  ASSERT_TRUE(ParseOpt(",lowerdir=/a,,volatile,", &o).ok());
  EXPECT_EQ(Lowers(o), std::vector<std::string>{"/a"});
  EXPECT_TRUE(o.is_volatile);
  EXPECT_TRUE(o.ignored.empty());
}

TEST(ParseOptions, AddsToExistingOptions) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("lowerdir=/a", &o).ok());
  ASSERT_TRUE(ParseOpt("upperdir=/u", &o).ok());
  EXPECT_EQ(Lowers(o), std::vector<std::string>{"/a"});
  EXPECT_EQ(o.upperdir, "/u");
}

TEST(ParseOptions, LaterLowerdirReplacesEarlier) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("lowerdir=/a:/b,lowerdir=/c", &o).ok());
  EXPECT_EQ(Lowers(o), std::vector<std::string>{"/c"});
}

TEST(ParseOptions, LowerdirOrderIsKept) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("lowerdir=/top:/mid:/bottom", &o).ok());
  EXPECT_EQ(Lowers(o), (std::vector<std::string>{"/top", "/mid", "/bottom"}));
}

TEST(ParseOptions, EscapedColonAndComma) {
  MountOptions o;
  Status s = ParseOpt("lowerdir=/a\\:b:/c\\,d:/e,upperdir=/u\\,1,workdir=/w\\:1", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Lowers(o), (std::vector<std::string>{"/a:b", "/c,d", "/e"}));
  EXPECT_EQ(o.upperdir, "/u,1");
  EXPECT_EQ(o.workdir, "/w:1");
}

TEST(ParseOptions, EscapedBackslash) {
  MountOptions o;
  // "\\:" is an escaped backslash followed by a separating colon.
  ASSERT_TRUE(ParseOpt("lowerdir=/a\\\\:/b", &o).ok());
  EXPECT_EQ(Lowers(o), (std::vector<std::string>{"/a\\", "/b"}));
}

TEST(ParseOptions, EscapedOtherCharacterIsLiteral) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("lowerdir=/a\\ b", &o).ok());
  EXPECT_EQ(Lowers(o), std::vector<std::string>{"/a b"});
}

TEST(ParseOptions, TrailingBackslashIsAnError) {
  MountOptions o;
  Status s = ParseOpt("lowerdir=/a\\", &o);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "lone backslash"));
}

TEST(ParseOptions, EmptyLowerdirEntries) {
  for (const char* text : {"lowerdir=:/a", "lowerdir=/a::/b", "lowerdir=/a:", "lowerdir=:"}) {
    MountOptions o;
    Status s = ParseOpt(text, &o);
    EXPECT_EQ(s.err(), EINVAL) << text;
    EXPECT_TRUE(HasSubstr(s.message(), "empty entry")) << text;
    EXPECT_TRUE(o.lowerdirs.empty()) << text;
  }
  // The kernel's data-only layers ("::") are named as such.
  MountOptions o;
  Status s = ParseOpt("lowerdir=/a::/b", &o);
  EXPECT_TRUE(HasSubstr(s.message(), "'::' marks data-only lower layers")) << s.message();
  s = ParseOpt("lowerdir=/a:", &o);
  EXPECT_FALSE(HasSubstr(s.message(), "data-only")) << s.message();
}

TEST(ParseOptions, EmptyPathValues) {
  MountOptions o;
  EXPECT_EQ(ParseOpt("lowerdir=", &o).err(), EINVAL);
  EXPECT_EQ(ParseOpt("upperdir=", &o).message(), "upperdir= needs a path");
  EXPECT_EQ(ParseOpt("workdir=", &o).message(), "workdir= needs a path");
  EXPECT_EQ(ParseOpt("fsname=", &o).message(), "fsname= needs a name");
}

TEST(ParseOptions, ValueOptionsWithoutValue) {
  for (const char* key : {"lowerdir", "upperdir", "workdir", "uidmapping", "gidmapping", "timeout",
                          "fsname", "redirect_dir", "context"}) {
    MountOptions o;
    Status s = ParseOpt(key, &o);
    EXPECT_EQ(s.err(), EINVAL) << key;
    EXPECT_TRUE(HasSubstr(s.message(), "'" + std::string(key) + "' needs a value")) << key;
  }
}

TEST(ParseOptions, FlagOptionsWithValue) {
  for (const char* text : {"volatile=1", "ro=yes", "debug=1", "noacl="}) {
    MountOptions o;
    Status s = ParseOpt(text, &o);
    EXPECT_EQ(s.err(), EINVAL) << text;
    EXPECT_TRUE(HasSubstr(s.message(), "takes no value")) << text;
  }
}

TEST(ParseOptions, FlagOptions) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("volatile,ro,allow_other,allow_root,default_permissions,userxattr,"
                       "nosuid,nodev,noexec,noatime,nodiratime",
                       &o)
                  .ok());
  EXPECT_TRUE(o.is_volatile);
  EXPECT_TRUE(o.read_only);
  EXPECT_TRUE(o.allow_other);
  EXPECT_TRUE(o.allow_root);
  EXPECT_TRUE(o.default_permissions);
  EXPECT_TRUE(o.userxattr);
  EXPECT_FALSE(o.suid);
  EXPECT_FALSE(o.dev);
  EXPECT_FALSE(o.exec);
  EXPECT_TRUE(o.noatime);
  EXPECT_TRUE(o.ignored.empty());

  ASSERT_TRUE(ParseOpt("rw,suid,dev,exec", &o).ok());
  EXPECT_FALSE(o.read_only);
  EXPECT_TRUE(o.suid);
  EXPECT_TRUE(o.dev);
  EXPECT_TRUE(o.exec);
}

// force_mask in storage.conf makes containers/storage ask for owners and
// modes kept in xattrs, which overtier does not do: refused, not ignored.
TEST(ParseOptions, XattrPermissionsAreRefused) {
  for (const char* v : {"xattr_permissions=1", "xattr_permissions=2"}) {
    MountOptions o;
    Status s = ParseOpt(std::string("lowerdir=/a,") + v, &o);
    EXPECT_EQ(s.err(), EINVAL) << v;
    EXPECT_TRUE(HasSubstr(s.message(), "force_mask")) << s.message();
    EXPECT_TRUE(HasSubstr(s.message(), "not supported")) << s.message();
  }
}

// What containers/storage passes for a mapping of one id.
TEST(ParseOptions, SquashOptions) {
  MountOptions o;
  EXPECT_EQ(o.squash_uid, -1);
  EXPECT_EQ(o.squash_gid, -1);
  ASSERT_TRUE(ParseOpt("squash_to_uid=1000,squash_to_gid=1001", &o).ok());
  EXPECT_EQ(o.squash_uid, 1000);
  EXPECT_EQ(o.squash_gid, 1001);
  EXPECT_TRUE(o.ignored.empty());
  ASSERT_TRUE(ParseOpt("squash_to_root", &o).ok());
  EXPECT_EQ(o.squash_uid, 0);
  EXPECT_EQ(o.squash_gid, 0);
  for (const char* bad :
       {"squash_to_uid=", "squash_to_uid=-1", "squash_to_gid=x", "squash_to_gid=4294967296"}) {
    MountOptions b;
    Status s = ParseOpt(bad, &b);
    EXPECT_EQ(s.err(), EINVAL) << bad;
    EXPECT_TRUE(HasSubstr(s.message(), "unsigned 32-bit id")) << bad << ": " << s.message();
  }
}

// containers/storage never passes allow_other: a root daemon lets other
// users in by itself (fuse-overlayfs does too), unless told not to.
TEST(ParseOptions, OtherUsersEnterARootMountUnlessToldNot) {
  MountOptions o;
  EXPECT_TRUE(AllowsOtherUsers(o, 0));
  EXPECT_FALSE(AllowsOtherUsers(o, 1000)) << "a user's mount needs allow_other asked";
  ASSERT_TRUE(ParseOpt("noallow_other", &o).ok());
  EXPECT_FALSE(AllowsOtherUsers(o, 0));
  ASSERT_TRUE(ParseOpt("allow_other", &o).ok()) << "the later option wins";
  EXPECT_TRUE(AllowsOtherUsers(o, 0));
  EXPECT_TRUE(AllowsOtherUsers(o, 1000));

  MountOptions root_only;
  ASSERT_TRUE(ParseOpt("allow_root", &root_only).ok());
  EXPECT_FALSE(AllowsOtherUsers(root_only, 0)) << "allow_root asked instead";
}

TEST(ParseOptions, NoaclTurnsAclEnforcementOff) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("lowerdir=/a,noacl", &o).ok());
  EXPECT_FALSE(o.acl);
  EXPECT_TRUE(o.ignored.empty()) << "noacl has an effect now";
  ASSERT_TRUE(ParseOpt("acl", &o).ok());
  EXPECT_TRUE(o.acl) << "a later acl wins";
  Status s = ParseOpt("acl=1", &o);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "takes no value"));
}

TEST(ParseOptions, AtimeModesOverrideNoatime) {
  for (const char* mode : {"atime", "relatime", "strictatime"}) {
    MountOptions o;
    ASSERT_TRUE(ParseOpt(std::string("noatime,") + mode, &o).ok()) << mode;
    EXPECT_FALSE(o.noatime) << mode;
    ASSERT_TRUE(ParseOpt(std::string(mode) + ",noatime", &o).ok()) << mode;
    EXPECT_TRUE(o.noatime) << mode;
  }
  MountOptions o;
  ASSERT_TRUE(ParseOpt("noatime,nodiratime", &o).ok());
  EXPECT_TRUE(o.noatime) << "nodiratime does not touch noatime";
}

TEST(ParseOptions, IgnoredOptionsAreKeptRaw) {
  const std::vector<std::string> ignored = {
      "redirect_dir=on", "metacopy=off",
      "index=off",       "xino=auto",
      "nfs_export=off",  "fsync=volatile",
      "context=foo",     "fscontext=foo",
      "defcontext=foo",  "rootcontext=foo",
      "static_nlink",    "xattr_permissions=0",
      "plugins=a:b",     "max_idle_threads=10",
      "threaded=1",      "fast_ino=1",
      "debug",           "sync",
      "async",           "kernel_cache",
      "auto_unmount",    "index=",
  };
  for (const std::string& opt : ignored) {
    MountOptions o;
    Status s = ParseOpt("lowerdir=/a," + opt, &o);
    ASSERT_TRUE(s.ok()) << opt << ": " << s.ToString();
    EXPECT_EQ(o.ignored, std::vector<std::string>{opt});
    EXPECT_EQ(Lowers(o), std::vector<std::string>{"/a"});
  }
}

TEST(ParseOptions, IgnoredOptionsAccumulateInOrder) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("index=off,debug", &o).ok());
  ASSERT_TRUE(ParseOpt("xino=off", &o).ok());
  EXPECT_EQ(o.ignored, (std::vector<std::string>{"index=off", "debug", "xino=off"}));
}

TEST(ParseOptions, QuotedSelinuxContextKeepsItsCommas) {
  // containers/storage appends label.FormatMountLabel(), i.e. context="...".
  MountOptions o;
  Status s = ParseOpt(
      "lowerdir=/a,upperdir=/u,workdir=/w,context=\"system_u:object_r:container_file_t:s0:c1,"
      "c2\",volatile",
      &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(o.ignored,
            std::vector<std::string>{"context=\"system_u:object_r:container_file_t:s0:c1,c2\""});
  EXPECT_TRUE(o.is_volatile);
  EXPECT_EQ(o.workdir, "/w");
}

TEST(ParseOptions, UnbalancedQuote) {
  MountOptions o;
  Status s = ParseOpt("context=\"abc,volatile", &o);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "unbalanced double quote"));
  // An escaped quote does not open a quoted section.
  MountOptions o2;
  ASSERT_TRUE(ParseOpt("lowerdir=/a\\\"b,volatile", &o2).ok());
  EXPECT_EQ(Lowers(o2), std::vector<std::string>{"/a\"b"});
  EXPECT_TRUE(o2.is_volatile);
}

TEST(ParseOptions, ImageLowers) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("lowerdir=image:base:/plain/dir:image:other,store=/s", &o).ok());
  ASSERT_EQ(o.lowerdirs.size(), 3u);
  EXPECT_EQ(o.lowerdirs[0], LowerDir::Image("base"));
  EXPECT_EQ(o.lowerdirs[1], LowerDir::Dir("/plain/dir"));
  EXPECT_EQ(o.lowerdirs[2], LowerDir::Image("other"));
  EXPECT_EQ(Lowers(o), (std::vector<std::string>{"image:base", "/plain/dir", "image:other"}));
  EXPECT_EQ(o.store, "/s");
  // An escaped colon keeps a directory literally named "image:x"; a
  // directory named "image" is written with a path.
  MountOptions o2;
  ASSERT_TRUE(ParseOpt("lowerdir=image\\:x:./image:image:a\\:b", &o2).ok());
  EXPECT_EQ(o2.lowerdirs, (std::vector<LowerDir>{LowerDir::Dir("image:x"), LowerDir::Dir("./image"),
                                                 LowerDir::Image("a:b")}));
  EXPECT_EQ(o2.lowerdirs[0].root_fd, -1);
}

TEST(ParseOptions, ImageLowerNeedsANameAndAStore) {
  MountOptions o;
  Status s = ParseOpt("lowerdir=/a:image", &o);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "'image:' needs an image name")) << s.message();
  s = ParseOpt("lowerdir=image::/a", &o);
  EXPECT_TRUE(HasSubstr(s.message(), "'image:' needs an image name")) << s.message();
  EXPECT_EQ(ParseOpt("store=", &o).message(), "store= needs a path");

  Invocation inv;
  s = Parse({"p", "-o", "lowerdir=/a:image:base,upperdir=/u,workdir=/w", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(), "lowerdir image:base needs store=");
  s = Parse({"p", "-o", "lowerdir=/a:image:base,store=/st", "/m"}, &inv);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(inv.opts.store, "/st");
}

TEST(ParseOptions, UnknownOptions) {
  for (const char* opt : {"frobnicate", "lowerdirs=/a", "LOWERDIR=/a", "upper=/u", "redirect_dir",
                          "nonempty", "volatil"}) {
    MountOptions o;
    Status s = ParseOpt(opt, &o);
    EXPECT_EQ(s.err(), EINVAL) << opt;
    if (std::string(opt) == "redirect_dir") continue;  // known key, "needs a value"
    EXPECT_EQ(s.message(), "unknown mount option '" + std::string(opt) + "'");
  }
}

TEST(ParseOptions, UserXattrIsRejectedWithHint) {
  MountOptions o;
  Status s = ParseOpt("user_xattr", &o);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "unknown mount option 'user_xattr'"));
  EXPECT_TRUE(HasSubstr(s.message(), "userxattr"));
  EXPECT_FALSE(o.userxattr);
}

TEST(ParseOptions, Timeout) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("timeout=0", &o).ok());
  EXPECT_DOUBLE_EQ(o.timeout, 0.0);
  ASSERT_TRUE(ParseOpt("timeout=2.5", &o).ok());
  EXPECT_DOUBLE_EQ(o.timeout, 2.5);
  ASSERT_TRUE(ParseOpt("timeout=3600", &o).ok());
  EXPECT_DOUBLE_EQ(o.timeout, 3600.0);
  for (const char* bad : {"timeout=", "timeout=-1", "timeout=abc", "timeout=1x", "timeout= 1",
                          "timeout=inf", "timeout=nan", "timeout=+1", "timeout=1e999"}) {
    MountOptions b;
    Status s = ParseOpt(bad, &b);
    EXPECT_EQ(s.err(), EINVAL) << bad;
    EXPECT_TRUE(HasSubstr(s.message(), "non-negative number of seconds")) << bad;
    EXPECT_DOUBLE_EQ(b.timeout, 1.0) << bad;
  }
}

TEST(ParseOptions, LogFile) {
  MountOptions o;
  EXPECT_TRUE(o.log.empty());
  ASSERT_TRUE(ParseOpt("log=/var/log/ovt\\,1.log", &o).ok());
  EXPECT_EQ(o.log, "/var/log/ovt,1.log");
  Status s = ParseOpt("log=", &o);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("log= needs a path"), std::string::npos) << s.ToString();
}

TEST(ParseOptions, Policy) {
  MountOptions o;
  EXPECT_TRUE(o.policy.empty());
  EXPECT_EQ(o.policy_interval, 0);
  ASSERT_TRUE(ParseOpt("policy=/etc/ovt\\,rules,policy_interval=60", &o).ok());
  EXPECT_EQ(o.policy, "/etc/ovt,rules");
  EXPECT_EQ(o.policy_interval, 60);
  ASSERT_TRUE(ParseOpt("policy_interval=1", &o).ok());
  EXPECT_EQ(o.policy_interval, 1);
  ASSERT_TRUE(ParseOpt("policy_interval=604800", &o).ok());
  EXPECT_EQ(o.policy_interval, 604800);
  for (const char* bad : {"policy_interval=", "policy_interval=0", "policy_interval=-5",
                          "policy_interval=1.5", "policy_interval=abc", "policy_interval=604801",
                          "policy_interval=99999999999", "policy_interval= 5"}) {
    MountOptions b;
    Status s = ParseOpt(bad, &b);
    EXPECT_EQ(s.err(), EINVAL) << bad;
    EXPECT_TRUE(HasSubstr(s.message(), "policy_interval= takes a number of seconds")) << bad;
    EXPECT_EQ(b.policy_interval, 0) << bad;
  }
  EXPECT_EQ(ParseOpt("policy=", &o).message(), "policy= needs a path");
  EXPECT_TRUE(HasSubstr(ParseOpt("policy", &o).message(), "needs a value")) << "flag form";
}

TEST(ParseCommandLine, HardAndSoft) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l,store=/s", "/m"}, &inv).ok());
  EXPECT_FALSE(inv.opts.hard);
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l,store=/s,hard", "/m"}, &inv).ok());
  EXPECT_TRUE(inv.opts.hard);
  // The last one given wins, as with mount(8).
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l,store=/s,hard,soft", "/m"}, &inv).ok());
  EXPECT_FALSE(inv.opts.hard);
  Status s = Parse({"p", "-o", "lowerdir=/l,hard", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "hard needs store=")) << s.message();
}

TEST(ParseCommandLine, WritebackCacheOnlyWithoutAStore) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w", "/m"}, &inv).ok());
  EXPECT_TRUE(UsesWritebackCache(inv.opts));
  ASSERT_TRUE(
      Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,writeback=0", "/m"}, &inv).ok());
  EXPECT_FALSE(UsesWritebackCache(inv.opts));
  // The migration tier must see each write: a store turns the default off.
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,store=/s", "/m"}, &inv).ok());
  EXPECT_FALSE(UsesWritebackCache(inv.opts));
  ASSERT_TRUE(
      Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,store=/s,writeback=0", "/m"}, &inv)
          .ok());
  Status s =
      Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,store=/s,writeback=1", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "writeback=1 cannot be combined with store=")) << s.message();
}

TEST(ParseCommandLine, PassthroughUnlessWritebackIsAskedFor) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w", "/m"}, &inv).ok());
  EXPECT_TRUE(WantsPassthrough(inv.opts));
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l", "/m"}, &inv).ok());
  EXPECT_TRUE(WantsPassthrough(inv.opts));  // read-only: the lowers' files
  ASSERT_TRUE(
      Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,passthrough=0", "/m"}, &inv).ok());
  EXPECT_FALSE(WantsPassthrough(inv.opts));
  // The kernel takes passthrough or the writeback cache: asking for the
  // cache gives up passthrough.
  ASSERT_TRUE(
      Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,writeback=1", "/m"}, &inv).ok());
  EXPECT_FALSE(WantsPassthrough(inv.opts));
  // With a store: for upper files the migration tier has no record of.
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,store=/s", "/m"}, &inv).ok());
  EXPECT_TRUE(WantsPassthrough(inv.opts));
  EXPECT_EQ(Parse({"p", "-o", "lowerdir=/l,passthrough=yes", "/m"}, &inv).err(), EINVAL);
}

TEST(ParseCommandLine, RestoreModeAndLazyCopyUp) {
  Invocation inv;
  ASSERT_TRUE(Parse({"p", "-o", "lowerdir=/l,store=/s", "/m"}, &inv).ok());
  EXPECT_FALSE(inv.opts.restore_on_demand);
  EXPECT_TRUE(inv.opts.lazy_copyup);
  EXPECT_TRUE(inv.opts.restore_clone);
  ASSERT_TRUE(
      Parse({"p", "-o", "lowerdir=/l,store=/s,restore=ondemand,lazy_copyup=off,restore_clone=off",
             "/m"},
            &inv)
          .ok());
  EXPECT_TRUE(inv.opts.restore_on_demand);
  EXPECT_FALSE(inv.opts.lazy_copyup);
  EXPECT_FALSE(inv.opts.restore_clone);
  // The last one given wins.
  ASSERT_TRUE(Parse({"p", "-o",
                     "lowerdir=/l,store=/s,restore=ondemand,restore=whole,lazy_copyup=off,"
                     "lazy_copyup=on",
                     "/m"},
                    &inv)
                  .ok());
  EXPECT_FALSE(inv.opts.restore_on_demand);
  EXPECT_TRUE(inv.opts.lazy_copyup);
  // The defaults are fine without a store; the other values are not.
  EXPECT_TRUE(Parse({"p", "-o", "lowerdir=/l,restore=whole,lazy_copyup=on", "/m"}, &inv).ok());
  Status s = Parse({"p", "-o", "lowerdir=/l,restore=ondemand", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "restore=ondemand needs store=")) << s.message();
  s = Parse({"p", "-o", "lowerdir=/l,lazy_copyup=off", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "lazy_copyup=off needs store=")) << s.message();
  s = Parse({"p", "-o", "lowerdir=/l,restore_clone=off", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "restore_clone=off needs store=")) << s.message();
  EXPECT_TRUE(Parse({"p", "-o", "lowerdir=/l,restore_clone=on", "/m"}, &inv).ok());
  for (const char* bad : {"restore=all", "restore=", "lazy_copyup=1", "lazy_copyup=yes",
                          "restore_clone=no", "restore_clone="}) {
    s = Parse({"p", "-o", std::string("lowerdir=/l,store=/s,") + bad, "/m"}, &inv);
    EXPECT_EQ(s.err(), EINVAL) << bad;
    EXPECT_TRUE(HasSubstr(s.message(), "takes")) << bad << ": " << s.message();
  }
  s = Parse({"p", "-o", "lowerdir=/l,store=/s,restore", "/m"}, &inv);
  EXPECT_TRUE(HasSubstr(s.message(), "needs a value")) << s.message();
}

TEST(ParseCommandLine, PolicyNeedsStoreAndAWritableUpper) {
  const std::string layers = "lowerdir=/l,upperdir=/u,workdir=/w";
  Invocation inv;
  Status s = Parse({"p", "-o", layers + ",policy=/r", "/m"}, &inv);
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(), "policy= needs store=");
  s = Parse({"p", "-o", "lowerdir=/l,store=/s,policy=/r", "/m"}, &inv);
  EXPECT_EQ(s.message(), "policy= needs a writable upper layer (upperdir=, not ro)");
  s = Parse({"p", "-o", layers + ",store=/s,policy=/r,ro", "/m"}, &inv);
  EXPECT_EQ(s.message(), "policy= needs a writable upper layer (upperdir=, not ro)");
  s = Parse({"p", "-o", layers + ",store=/s,policy_interval=5", "/m"}, &inv);
  EXPECT_EQ(s.message(), "policy_interval= needs policy=FILE");
  s = Parse({"p", "-o", layers + ",store=/s,policy=/r", "-o", "policy_interval=5", "/m"}, &inv);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(inv.opts.policy, "/r");
  EXPECT_EQ(inv.opts.policy_interval, 5);
}

// ---------------------------------------------------------------------------
// Id mappings
// ---------------------------------------------------------------------------

TEST(ParseIdMapping, SeveralRanges) {
  MountOptions o;
  Status s = ParseOpt("uidmapping=0:1000:1:1:100000:65535,gidmapping=0:2000:10", &o);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(o.uidmap.size(), 2u);
  EXPECT_EQ(o.uidmap[0].disk, 0u);
  EXPECT_EQ(o.uidmap[0].mount, 1000u);
  EXPECT_EQ(o.uidmap[0].count, 1u);
  EXPECT_EQ(o.uidmap[1].disk, 1u);
  EXPECT_EQ(o.uidmap[1].mount, 100000u);
  EXPECT_EQ(o.uidmap[1].count, 65535u);
  ASSERT_EQ(o.gidmap.size(), 1u);
  EXPECT_EQ(o.gidmap[0].mount, 2000u);
  EXPECT_EQ(o.gidmap[0].count, 10u);
}

TEST(ParseIdMapping, LeadingColonSeveralRanges) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("uidmapping=:0:1000:1:1:100000:65535", &o).ok());
  ASSERT_EQ(o.uidmap.size(), 2u);
  EXPECT_EQ(o.uidmap[1].disk, 1u);
}

TEST(ParseIdMapping, WholeIdSpace) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("uidmapping=0:0:4294967295", &o).ok());
  ASSERT_TRUE(ParseOpt("uidmapping=4294967295:0:1", &o).ok());
  EXPECT_EQ(o.uidmap.size(), 1u) << "a later uidmapping= replaces an earlier one";
  EXPECT_EQ(o.uidmap[0].disk, 4294967295u);
}

TEST(ParseIdMapping, AdjacentRangesAreFine) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("uidmapping=0:100:10:10:110:10", &o).ok());
  EXPECT_EQ(o.uidmap.size(), 2u);
}

TEST(ParseIdMapping, Errors) {
  struct Case {
    const char* text;
    const char* want;
  };
  const Case cases[] = {
      {"uidmapping=", "expected DISK:MOUNT:COUNT"},
      {"uidmapping=:", "expected DISK:MOUNT:COUNT"},
      {"uidmapping=0:1", "expected DISK:MOUNT:COUNT"},
      {"uidmapping=0:1:2:3", "expected DISK:MOUNT:COUNT"},
      {"uidmapping=0::5", "not three unsigned 32-bit numbers"},
      {"uidmapping=a:1:2", "not three unsigned 32-bit numbers"},
      {"uidmapping=-1:1:2", "not three unsigned 32-bit numbers"},
      {"uidmapping=0:1:4294967296", "not three unsigned 32-bit numbers"},
      {"uidmapping=0: 1:2", "not three unsigned 32-bit numbers"},
      {"uidmapping=0:1:0", "has count 0"},
      {"uidmapping=4294967295:0:2", "goes past id 4294967295"},
      {"gidmapping=0:4294967000:1000", "goes past id 4294967295"},
      {"uidmapping=0:100:10:5:200:10", "overlaps range '0:100:10'"},   // inner overlap
      {"uidmapping=0:100:10:20:105:10", "overlaps range '0:100:10'"},  // outer overlap
      {"gidmapping=10:100:10:0:0:11", "overlaps range '10:100:10'"},   // inner overlap below
      {"uidmapping=0:100:10:0:100:10", "overlaps range '0:100:10'"},   // duplicate
  };
  for (const Case& c : cases) {
    MountOptions o;
    Status s = ParseOpt(c.text, &o);
    EXPECT_EQ(s.err(), EINVAL) << c.text;
    EXPECT_TRUE(HasSubstr(s.message(), c.want)) << c.text;
    EXPECT_TRUE(HasSubstr(s.message(), c.text)) << "message names the option";
    EXPECT_TRUE(o.uidmap.empty() && o.gidmap.empty()) << c.text;
  }
}

TEST(MapId, EmptyMapIsIdentity) {
  std::vector<IdMapping> none;
  for (uint32_t id : {0u, 1u, 1000u, 65534u, 4294967295u}) {
    EXPECT_EQ(MapIdToMount(none, id), id);
    EXPECT_EQ(MapIdToDisk(none, id), id);
  }
}

TEST(MapId, RangesBothWays) {
  // Like rootless podman's "0:1000:1:1:100000:65536": the container's root
  // (0 on disk) is the user, its other ids (1.. on disk) subordinate ids.
  std::vector<IdMapping> map = {{0, 1000, 1}, {1, 100000, 65536}};
  EXPECT_EQ(MapIdToDisk(map, 1000), 0u);
  EXPECT_EQ(MapIdToDisk(map, 100000), 1u);
  EXPECT_EQ(MapIdToDisk(map, 100000 + 65535), 65536u);
  EXPECT_EQ(MapIdToMount(map, 0), 1000u);
  EXPECT_EQ(MapIdToMount(map, 1), 100000u);
  EXPECT_EQ(MapIdToMount(map, 65536), 100000u + 65535);
  for (uint32_t disk = 0; disk <= 65536; disk += 997) {
    EXPECT_EQ(MapIdToDisk(map, MapIdToMount(map, disk)), disk);
  }
}

TEST(MapId, UnmappedIsOverflowId) {
  std::vector<IdMapping> map = {{0, 100000, 65536}};
  EXPECT_EQ(MapIdToDisk(map, 0), 65534u);
  EXPECT_EQ(MapIdToDisk(map, 99999), 65534u);
  EXPECT_EQ(MapIdToDisk(map, 100000 + 65536), 65534u);
  EXPECT_EQ(MapIdToMount(map, 65536), 65534u);
  EXPECT_EQ(MapIdToMount(map, 4294967295u), 65534u);
}

TEST(MapId, TopOfIdSpaceDoesNotOverflow) {
  std::vector<IdMapping> map = {{4294967295u, 0, 1}, {0, 4294967294u, 1}};
  EXPECT_EQ(MapIdToMount(map, 4294967295u), 0u);
  EXPECT_EQ(MapIdToDisk(map, 0), 4294967295u);
  EXPECT_EQ(MapIdToDisk(map, 4294967294u), 0u);
  EXPECT_EQ(MapIdToDisk(map, 4294967295u), 65534u);
  EXPECT_EQ(MapIdToMount(map, 1), 65534u);
}

TEST(MapId, ParsedMappingRoundTrip) {
  MountOptions o;
  ASSERT_TRUE(ParseOpt("uidmapping=:0:100000:65536", &o).ok());
  EXPECT_EQ(MapIdToMount(o.uidmap, 0), 100000u);
  EXPECT_EQ(MapIdToDisk(o.uidmap, 100033), 33u);
}

// ---------------------------------------------------------------------------
// ValidateMountOptions against real directories
// ---------------------------------------------------------------------------

// Mounting in a private mount namespace keeps test mounts away from the rest
// of the machine and drops them even if the test dies.
bool PrivateMountNamespace() {
  static const bool ok = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 &&
                         mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  return ok;
}

class ValidateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/params_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << strerror(errno);
    root_ = tmpl;
  }

  void TearDown() override {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
    std::error_code ec;
    for (const std::string& d : extra_roots_) std::filesystem::remove_all(d, ec);
    if (!root_.empty()) {
      // Undo chmods so removal works for non-root runs.
      for (auto& e : std::filesystem::recursive_directory_iterator(root_, ec)) {
        if (e.is_directory(ec) && !e.is_symlink(ec)) chmod(e.path().c_str(), 0755);
      }
      std::filesystem::remove_all(root_, ec);
    }
  }

  std::string Path(const std::string& rel) const { return root_ + "/" + rel; }

  std::string Dir(const std::string& rel) {
    std::filesystem::create_directories(Path(rel));
    return Path(rel);
  }

  std::string File(const std::string& rel) {
    std::ofstream(Path(rel)) << "x";
    return Path(rel);
  }

  std::string Symlink(const std::string& target, const std::string& rel) {
    EXPECT_EQ(symlink(target.c_str(), Path(rel).c_str()), 0) << strerror(errno);
    return Path(rel);
  }

  // A read-write layout: two lowers, upper, work, mount point.
  MountOptions Layout() {
    MountOptions o;
    o.lowerdirs = {Dir("l1"), Dir("l2")};
    o.upperdir = Dir("upper");
    o.workdir = Dir("work");
    Dir("merged");
    return o;
  }

  bool Mount(const char* src, const std::string& dst, const char* type, unsigned long flags,
             const char* data) {
    if (!PrivateMountNamespace()) {
      errno = EPERM;
      return false;
    }
    if (mount(src, dst.c_str(), type, flags, data) != 0) return false;
    mounts_.push_back(dst);
    return true;
  }

  std::string root_;
  std::vector<std::string> mounts_;
  std::vector<std::string> extra_roots_;
};

TEST_F(ValidateTest, AcceptsReadWriteLayout) {
  MountOptions o = Layout();
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, AcceptsReadOnlyUnion) {
  MountOptions o;
  o.lowerdirs = {Dir("a"), Dir("b"), Dir("c")};
  Dir("m");
  Status s = ValidateMountOptions(o, Path("m"));
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, ImageLowersAreLeftToTheDaemonButTheStoreIsChecked) {
  MountOptions o = Layout();
  o.lowerdirs.insert(o.lowerdirs.begin(), LowerDir::Image("does-not-matter-here"));
  o.store = Dir("store");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_TRUE(s.ok()) << s.ToString();
  o.store = Path("no-store");
  s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "store '" + Path("no-store") + "'")) << s.message();
  // Containers are opened while serving: not through the mount itself.
  o.store = Dir("merged/store");
  s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "is inside mount point")) << s.message();
}

TEST_F(ValidateTest, AcceptsContainersStorageSymlinkedLowers) {
  // G/overlay/l/SHORT -> ../ID/diff, as containers/storage lays layers out.
  Dir("overlay/l");
  Dir("overlay/A/diff");
  Dir("overlay/B/diff");
  Dir("overlay/C/diff");
  Dir("overlay/C/work");
  Dir("overlay/C/merged");
  Symlink("../A/diff", "overlay/l/AAAA");
  Symlink("../B/diff", "overlay/l/BBBB");
  MountOptions o;
  o.lowerdirs = {Path("overlay/l/AAAA"), Path("overlay/l/BBBB")};
  o.upperdir = Path("overlay/C/diff");
  o.workdir = Path("overlay/C/work");
  o.is_volatile = true;
  Status s = ValidateMountOptions(o, Path("overlay/C/merged"));
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, AcceptsRelativePaths) {
  MountOptions o = Layout();
  o.lowerdirs[0] = std::filesystem::relative(o.lowerdirs[0].path).string();
  Status s = ValidateMountOptions(o, std::filesystem::relative(Path("merged")).string());
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, MissingLowerdir) {
  MountOptions o = Layout();
  o.lowerdirs.push_back(Path("nope"));
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_EQ(s.message(), "lowerdir '" + Path("nope") + "'");
  EXPECT_EQ(s.ToString(), "lowerdir '" + Path("nope") + "': No such file or directory");
}

TEST_F(ValidateTest, DanglingSymlinkLowerdir) {
  MountOptions o = Layout();
  o.lowerdirs = {Symlink("../gone", "link")};
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), ENOENT);
  EXPECT_TRUE(HasSubstr(s.message(), "lowerdir '" + Path("link") + "'"));
}

TEST_F(ValidateTest, LowerdirIsAFile) {
  MountOptions o = Layout();
  o.lowerdirs = {File("f")};
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), ENOTDIR);
  EXPECT_EQ(s.ToString(), "lowerdir '" + Path("f") + "': Not a directory");
}

TEST_F(ValidateTest, EmptyLowerdirPath) {
  MountOptions o = Layout();
  o.lowerdirs = {LowerDir::Dir("")};
  EXPECT_EQ(ValidateMountOptions(o, Path("merged")).err(), EINVAL);
}

TEST_F(ValidateTest, MissingUpperdirAndWorkdir) {
  MountOptions o = Layout();
  o.upperdir = Path("no-upper");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.ToString(), "upperdir '" + Path("no-upper") + "': No such file or directory");

  o = Layout();
  o.workdir = Path("no-work");
  s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.ToString(), "workdir '" + Path("no-work") + "': No such file or directory");

  o = Layout();
  o.workdir = File("workfile");
  s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), ENOTDIR);
}

TEST_F(ValidateTest, UpperInsideLower) {
  MountOptions o = Layout();
  o.upperdir = Dir("l2/upper");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(),
            "upperdir '" + Path("l2/upper") + "' is inside lowerdir '" + Path("l2") + "'");
}

TEST_F(ValidateTest, LowerInsideUpper) {
  MountOptions o = Layout();
  o.lowerdirs[1] = Dir("upper/sub");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(),
            "lowerdir '" + Path("upper/sub") + "' is inside upperdir '" + Path("upper") + "'");
}

TEST_F(ValidateTest, UpperSameAsLower) {
  MountOptions o = Layout();
  o.upperdir = o.lowerdirs[0].path;
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "are the same directory"));
}

TEST_F(ValidateTest, UpperInsideLowerThroughSymlink) {
  MountOptions o = Layout();
  Dir("l1/deep");
  o.upperdir = Symlink(Path("l1/deep"), "innocent");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "upperdir '" + Path("innocent") + "' ('" + Path("l1/deep") +
                                         "') is inside lowerdir '" + Path("l1") + "'"));
}

TEST_F(ValidateTest, LowerThroughSymlinkSameAsUpper) {
  MountOptions o = Layout();
  o.lowerdirs[0] = Symlink("upper", "l-link");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "same directory"));
}

TEST_F(ValidateTest, CommonPrefixIsNotInside) {
  // /x/l1 vs /x/l1x: a string prefix, not a path prefix.
  MountOptions o = Layout();
  o.upperdir = Dir("l1x");
  o.workdir = Dir("l1xwork");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, WorkdirAndUpperdirNesting) {
  MountOptions o = Layout();
  o.workdir = Dir("upper/work");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.message(),
            "workdir '" + Path("upper/work") + "' is inside upperdir '" + Path("upper") + "'");

  o = Layout();
  o.upperdir = Dir("work/upper");
  s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.message(),
            "upperdir '" + Path("work/upper") + "' is inside workdir '" + Path("work") + "'");

  o = Layout();
  o.workdir = o.upperdir;
  s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_TRUE(HasSubstr(s.message(), "are the same directory"));
}

TEST_F(ValidateTest, WorkdirAndLowerdirNesting) {
  MountOptions o = Layout();
  o.workdir = Dir("l1/work");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.message(),
            "workdir '" + Path("l1/work") + "' is inside lowerdir '" + Path("l1") + "'");

  o = Layout();
  o.lowerdirs[1] = Dir("work/lower");
  s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.message(),
            "lowerdir '" + Path("work/lower") + "' is inside workdir '" + Path("work") + "'");
}

TEST_F(ValidateTest, WorkdirOnAnotherFileSystem) {
  char tmpl[] = "/dev/shm/params_test.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) GTEST_SKIP() << "no /dev/shm: " << strerror(errno);
  extra_roots_.push_back(tmpl);
  struct stat a {
  }, b{};
  ASSERT_EQ(stat(tmpl, &a), 0);
  MountOptions o = Layout();
  ASSERT_EQ(stat(o.upperdir.c_str(), &b), 0);
  if (a.st_dev == b.st_dev) GTEST_SKIP() << "/dev/shm and /tmp are one file system here";
  o.workdir = tmpl;
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EXDEV);
  EXPECT_EQ(s.message(), "workdir '" + std::string(tmpl) +
                             "' is not on the same file system as upperdir '" + Path("upper") +
                             "'");
}

TEST_F(ValidateTest, UpperdirOnReadOnlyMount) {
  MountOptions o = Layout();
  Dir("ro");
  if (!Mount(Path("ro").c_str(), Path("ro"), nullptr, MS_BIND, nullptr) ||
      mount(nullptr, Path("ro").c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
    GTEST_SKIP() << "cannot make a read-only bind mount: " << strerror(errno);
  }
  // Writability is checked before the layers' relations, so the shared
  // directory does not matter here.
  o.upperdir = Path("ro");
  o.workdir = Path("ro");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EROFS);
  EXPECT_EQ(s.ToString(), "upperdir '" + Path("ro") + "' is not writable: Read-only file system");
}

TEST_F(ValidateTest, ReadOnlyMountSkipsWritability) {
  MountOptions o = Layout();
  std::string ro = Dir("rofs");
  Dir("rofs/upper");
  Dir("rofs/work");
  if (!Mount(ro.c_str(), ro, nullptr, MS_BIND, nullptr) ||
      mount(nullptr, ro.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
    GTEST_SKIP() << "cannot make a read-only bind mount: " << strerror(errno);
  }
  o.upperdir = Path("rofs/upper");
  o.workdir = Path("rofs/work");
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EROFS) << s.ToString();
  EXPECT_TRUE(HasSubstr(s.message(), "is not writable"));
  o.read_only = true;
  s = ValidateMountOptions(o, Path("merged"));
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, WorkdirOnAnotherMountOfTheSameFileSystem) {
  MountOptions o = Layout();
  std::string bind = Dir("bind");
  if (!Mount(Path("work").c_str(), bind, nullptr, MS_BIND, nullptr)) {
    GTEST_SKIP() << "cannot bind mount: " << strerror(errno);
  }
  struct statx sx {};
  if (statx(AT_FDCWD, bind.c_str(), 0, STATX_MNT_ID, &sx) != 0 ||
      (sx.stx_mask & STATX_MNT_ID) == 0) {
    GTEST_SKIP() << "kernel reports no mount ids";
  }
  o.workdir = bind;
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EXDEV) << s.ToString();
  EXPECT_EQ(s.message(),
            "workdir '" + bind + "' is not on the same mount as upperdir '" + Path("upper") + "'");
}

TEST_F(ValidateTest, SameDirectoryThroughABindMount) {
  // Different paths, one directory: only the inode comparison sees it.
  MountOptions o = Layout();
  std::string bind = Dir("upper-again");
  if (!Mount(o.upperdir.c_str(), bind, nullptr, MS_BIND, nullptr)) {
    GTEST_SKIP() << "cannot bind mount: " << strerror(errno);
  }
  o.lowerdirs[1] = bind;
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(),
            "upperdir '" + Path("upper") + "' and lowerdir '" + bind + "' are the same directory");
}

TEST_F(ValidateTest, UnwritableUpperdirForNonRoot) {
  if (geteuid() == 0) GTEST_SKIP() << "permission bits do not stop root";
  MountOptions o = Layout();
  ASSERT_EQ(chmod(o.upperdir.c_str(), 0555), 0);
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EACCES);
  EXPECT_TRUE(HasSubstr(s.message(), "is not writable"));
}

TEST_F(ValidateTest, UnreadableLowerdirForNonRoot) {
  if (geteuid() == 0) GTEST_SKIP() << "permission bits do not stop root";
  MountOptions o = Layout();
  ASSERT_EQ(chmod(o.lowerdirs[0].path.c_str(), 0), 0);
  Status s = ValidateMountOptions(o, Path("merged"));
  EXPECT_EQ(s.err(), EACCES);
  EXPECT_TRUE(HasSubstr(s.message(), "is not readable"));
}

// trusted.* xattrs need CAP_SYS_ADMIN: a daemon without it takes
// user.overlay.* instead of failing every copy-up with EPERM.
TEST_F(ValidateTest, ADaemonThatMayNotWriteTrustedXattrsTakesUserXattrs) {
  if (geteuid() != 0) {
    MountOptions o = Layout();
    std::string note;
    ChooseXattrNamespace(&o, &note);
    EXPECT_TRUE(o.userxattr);
    EXPECT_TRUE(HasSubstr(note, "user.overlay.*")) << note;
    return;
  }
  // As nobody, in a child (the test runs as root).
  MountOptions layout = Layout();
  ASSERT_EQ(chmod(Path("").c_str(), 0755), 0);  // mkdtemp's 0700 would stop nobody first
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(10);
    MountOptions o = layout;
    std::string note;
    ChooseXattrNamespace(&o, &note);
    if (!o.userxattr) _exit(11);
    if (note.find("uid 65534") == std::string::npos ||
        note.find("user.overlay.*") == std::string::npos)
      _exit(12);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  // Root keeps trusted.*, and the probe leaves nothing on the work directory.
  MountOptions o = Layout();
  std::string note = "x";
  ChooseXattrNamespace(&o, &note);
  EXPECT_FALSE(o.userxattr);
  EXPECT_EQ(note, "");
  char v[8];
  EXPECT_EQ(getxattr(o.workdir.c_str(), "trusted.overtier.probe", v, sizeof v), -1);
  EXPECT_EQ(errno, ENODATA);
  // Nothing to choose without an upper layer to write.
  o = Layout();
  o.read_only = true;
  ChooseXattrNamespace(&o, &note);
  EXPECT_FALSE(o.userxattr);
}

TEST_F(ValidateTest, MountpointProblems) {
  MountOptions o = Layout();
  Status s = ValidateMountOptions(o, Path("no-mp"));
  EXPECT_EQ(s.ToString(), "mount point '" + Path("no-mp") + "': No such file or directory");

  s = ValidateMountOptions(o, File("mpfile"));
  EXPECT_EQ(s.ToString(), "mount point '" + Path("mpfile") + "': Not a directory");

  s = ValidateMountOptions(o, "");
  EXPECT_EQ(s.err(), EINVAL);
}

TEST_F(ValidateTest, MountpointInsideALayer) {
  MountOptions o = Layout();
  Status s = ValidateMountOptions(o, Dir("upper/merged"));
  EXPECT_EQ(s.err(), EINVAL);
  EXPECT_EQ(s.message(), "mount point '" + Path("upper/merged") + "' is inside upperdir '" +
                             Path("upper") + "'");

  s = ValidateMountOptions(o, Dir("l2/merged"));
  EXPECT_EQ(s.message(),
            "mount point '" + Path("l2/merged") + "' is inside lowerdir '" + Path("l2") + "'");

  s = ValidateMountOptions(o, Dir("work/merged"));
  EXPECT_TRUE(HasSubstr(s.message(), "is inside workdir"));
}

TEST_F(ValidateTest, MountpointOverALowerdirIsAllowed) {
  // Mounting over a lower layer is legal with the kernel overlayfs; the
  // daemon opens its layers before mounting.
  MountOptions o;
  o.lowerdirs = {Dir("base")};
  Status s = ValidateMountOptions(o, Path("base"));
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, MountpointAlreadyMounted) {
  MountOptions o = Layout();
  std::string mp = Dir("busy mp");  // the space exercises mountinfo decoding
  Dir("ovl/l");
  Dir("ovl/u");
  Dir("ovl/w");
  std::string data =
      "lowerdir=" + Path("ovl/l") + ",upperdir=" + Path("ovl/u") + ",workdir=" + Path("ovl/w");
  if (!Mount("overlay", mp, "overlay", 0, data.c_str())) {
    GTEST_SKIP() << "cannot mount an overlay: " << strerror(errno);
  }
  Status s = ValidateMountOptions(o, mp);
  EXPECT_EQ(s.err(), EBUSY);
  EXPECT_EQ(s.message(), "mount point '" + mp + "' is already mounted (overlay)");

  // A directory inside that overlay is not itself a mount point.
  ASSERT_EQ(mkdir((mp + "/sub").c_str(), 0755), 0);
  s = ValidateMountOptions(o, mp + "/sub");
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, MountpointOnOrdinaryMountIsAllowed) {
  MountOptions o = Layout();
  std::string mp = Dir("tmpfs-mp");
  if (!Mount("none", mp, "tmpfs", 0, nullptr)) {
    GTEST_SKIP() << "cannot mount tmpfs: " << strerror(errno);
  }
  Status s = ValidateMountOptions(o, mp);
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ValidateTest, FirstProblemIsReported) {
  MountOptions o = Layout();
  o.lowerdirs = {Path("missing1"), Path("missing2")};
  o.upperdir = Path("missing3");
  Status s = ValidateMountOptions(o, Path("missing4"));
  EXPECT_EQ(s.message(), "lowerdir '" + Path("missing1") + "'");
}

}  // namespace
}  // namespace overtier

namespace overtier {
namespace {
TEST(ParseMountOptionStringTest, Writeback) {
  MountOptions o;
  EXPECT_TRUE(o.writeback);  // on by default, as in fuse-overlayfs
  ASSERT_TRUE(ParseMountOptionString("writeback=0", &o).ok());
  EXPECT_FALSE(o.writeback);
  ASSERT_TRUE(ParseMountOptionString("writeback=1", &o).ok());
  EXPECT_TRUE(o.writeback);
  EXPECT_EQ(ParseMountOptionString("writeback=yes", &o).err(), EINVAL);
}

TEST(ParseMountOptionStringTest, Threads) {
  MountOptions o;
  EXPECT_EQ(o.threads, 1);
  ASSERT_TRUE(ParseMountOptionString("threads=4", &o).ok());
  EXPECT_EQ(o.threads, 4);
  EXPECT_EQ(ParseMountOptionString("threads=0", &o).err(), EINVAL);
  EXPECT_EQ(ParseMountOptionString("threads=65", &o).err(), EINVAL);
  EXPECT_EQ(ParseMountOptionString("threads=x", &o).err(), EINVAL);
}

TEST(ParseMountOptionStringTest, Spin) {
  MountOptions o;
  EXPECT_EQ(o.spin_us, kDefaultSpinUs);
  ASSERT_TRUE(ParseMountOptionString("spin=0", &o).ok());
  EXPECT_EQ(o.spin_us, 0u);
  ASSERT_TRUE(ParseMountOptionString("spin=1000", &o).ok());
  EXPECT_EQ(o.spin_us, 1000u);
  EXPECT_EQ(ParseMountOptionString("spin=1001", &o).err(), EINVAL);
  EXPECT_EQ(ParseMountOptionString("spin=-1", &o).err(), EINVAL);
  EXPECT_EQ(ParseMountOptionString("spin=5us", &o).err(), EINVAL);
}
}  // namespace
}  // namespace overtier
