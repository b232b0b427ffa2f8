#include "union/overlay_format.h"

#include <gtest/gtest.h>

namespace overtier {
namespace {

TEST(XattrNames, TheUnionsOwnNamesAreInternal) {
  const XattrNames trusted(false);
  for (const char* n :
       {"trusted.overlay.opaque", "trusted.overlay.redirect", "trusted.overlay.anything",
        "trusted.overtier.origin", "user.overtier.state", "user.overtier.nlink"})
    EXPECT_TRUE(trusted.IsInternal(n)) << n;
  for (const char* n : {"user.overlay.opaque", "trusted.mine", "security.capability", "user.x",
                        "trusted.overlayfoo"})
    EXPECT_FALSE(trusted.IsInternal(n)) << n;
  const XattrNames user(true);
  EXPECT_TRUE(user.IsInternal("user.overlay.opaque"));
  EXPECT_TRUE(user.IsInternal("trusted.overlay.opaque")) << "never passed on raw";
}

// Kernel overlayfs (Linux 6.7+, fs/overlayfs/xattrs.c): a user's name in
// the overlay namespace gains "overlay." after the prefix on the real
// object, and loses it on the way back.
TEST(XattrNames, UserNamesInTheOverlayNamespaceAreEscaped) {
  const XattrNames trusted(false);
  EXPECT_TRUE(trusted.IsEscapable("trusted.overlay.opaque"));
  EXPECT_FALSE(trusted.IsEscapable("user.overlay.opaque"));
  EXPECT_FALSE(trusted.IsEscapable("trusted.overtier.origin"));
  EXPECT_EQ(trusted.Escaped("trusted.overlay.opaque"), "trusted.overlay.overlay.opaque");
  EXPECT_EQ(trusted.Escaped("trusted.overlay.overlay.x"), "trusted.overlay.overlay.overlay.x");
  EXPECT_TRUE(trusted.IsEscaped("trusted.overlay.overlay.opaque"));
  EXPECT_FALSE(trusted.IsEscaped("trusted.overlay.opaque"));
  EXPECT_FALSE(trusted.IsEscaped("trusted.overlay.overlayx"));
  EXPECT_FALSE(trusted.IsInternal("trusted.overlay.overlay.opaque")) << "the user's";
  EXPECT_EQ(trusted.Unescaped("trusted.overlay.overlay.opaque"), "trusted.overlay.opaque");
  EXPECT_EQ(trusted.Unescaped(trusted.Escaped("trusted.overlay.overlay.x")),
            "trusted.overlay.overlay.x");

  const XattrNames user(true);
  EXPECT_EQ(user.Escaped("user.overlay.opaque"), "user.overlay.overlay.opaque");
  EXPECT_TRUE(user.IsEscaped("user.overlay.overlay.opaque"));
  EXPECT_FALSE(user.IsEscaped("trusted.overlay.overlay.opaque")) << "not this mount's namespace";
  EXPECT_TRUE(user.IsInternal("trusted.overlay.overlay.opaque"));
  EXPECT_FALSE(user.IsEscapable("trusted.overlay.opaque"));
}

}  // namespace
}  // namespace overtier
