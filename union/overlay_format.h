// The on-disk vocabulary of an overlayfs-compatible upper layer, and of the
// AUFS-style markers found in container image layers: pure predicates, no I/O.
#ifndef OVERTIER_UNION_OVERLAY_FORMAT_H_
#define OVERTIER_UNION_OVERLAY_FORMAT_H_

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <string>
#include <string_view>

namespace overtier {

// overlayfs whiteout: a character device 0/0 named like the hidden entry.
inline bool IsWhiteoutStat(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

// AUFS / OCI image-layer markers (containers/storage lower layers):
//   ".wh.NAME"      hides NAME of the layers below
//   ".wh..wh..opq"  makes the directory opaque
//   ".wh..wh.*"     other AUFS bookkeeping (".wh..wh.plnk", ".wh..wh.aufs"):
//                   never shown
inline constexpr std::string_view kAufsPrefix = ".wh.";
inline constexpr std::string_view kAufsOpaque = ".wh..wh..opq";

inline bool IsAufsMarker(std::string_view name) { return name.starts_with(kAufsPrefix); }
inline std::string AufsWhiteoutName(std::string_view name) {
  std::string s(kAufsPrefix);
  s += name;
  return s;
}

// The opaque xattr's value on a directory that is not opaque but holds
// whiteouts kept as xattrs (XattrNames::whiteout); "y" makes it opaque.
inline constexpr std::string_view kXattrWhiteoutsMark = "x";

// What a lower directory's marks say: opaque (overlay xattr "y", or the
// AUFS marker), or holding whiteouts kept as xattrs (overlay xattr "x");
// impure (overlay xattr "impure"): it was an upper directory that got
// copied-up objects, some of which may be metadata-only copies.
struct DirMarks {
  bool opaque = false;
  bool xwhiteouts = false;
  bool impure = false;
};
// What a directory's opaque xattr value says (the AUFS marker aside).
inline DirMarks OpaqueValueMarks(std::string_view value) {
  return {.opaque = value == "y" || value == "Y", .xwhiteouts = value == kXattrWhiteoutsMark};
}

// Names of the xattrs that carry union state. overlayfs keeps them in
// "trusted.overlay." (or "user.overlay." with the userxattr option); ours
// (origin, hard-link bookkeeping) sit in "trusted.overtier." next to them.
class XattrNames {
 public:
  explicit XattrNames(bool userxattr)
      : overlay_(userxattr ? "user.overlay." : "trusted.overlay."),
        opaque_(overlay_ + "opaque"),
        redirect_(overlay_ + "redirect"),
        impure_(overlay_ + "impure"),
        metacopy_(overlay_ + "metacopy"),
        whiteout_(overlay_ + "whiteout"),
        origin_(std::string(userxattr ? "user.overtier." : "trusted.overtier.") + "origin"),
        nlink_(std::string(userxattr ? "user.overtier." : "trusted.overtier.") + "nlink"),
        userxattr_(userxattr) {}

  const std::string& opaque() const { return opaque_; }
  const std::string& redirect() const { return redirect_; }
  const std::string& impure() const { return impure_; }
  const std::string& metacopy() const { return metacopy_; }
  // Linux 6.7+: a zero-size regular file carrying it is a whiteout, in a
  // lower directory whose opaque xattr is "x" (kXattrWhiteoutsMark).
  const std::string& whiteout() const { return whiteout_; }
  const std::string& origin() const { return origin_; }
  // On a copied-up file that had several lower names: how many of those
  // names still show it without having an upper name of their own.
  const std::string& nlink() const { return nlink_; }

  // A user's own name in the overlay namespace in use ("trusted.overlay.X",
  // or "user.overlay.X" with userxattr) is kept on the real object escaped,
  // as "trusted.overlay.overlay.X", and shown back unescaped: what the
  // kernel overlayfs does since Linux 6.7, so that an overlay stacked on
  // this mount keeps its own marks, which this union never reads as its
  // own. The escaped names are the user's: listed, copied up, not internal.
  bool IsEscapable(std::string_view shown) const { return shown.starts_with(overlay_); }
  std::string Escaped(std::string_view shown) const {
    std::string real = overlay_;
    real += kEscape;
    real += shown.substr(overlay_.size());
    return real;
  }
  bool IsEscaped(std::string_view real) const {
    return real.starts_with(overlay_) && real.substr(overlay_.size()).starts_with(kEscape);
  }
  std::string Unescaped(std::string_view real) const {
    return overlay_ + std::string(real.substr(overlay_.size() + kEscape.size()));
  }

  // True for the names users may neither see, set nor remove through the
  // mount: the overlay namespace in use, and every overtier-internal name
  // (the escaped names above aside).
  bool IsInternal(std::string_view name) const {
    if (IsEscaped(name)) return false;
    if (name.starts_with("trusted.overlay.")) return true;
    if (name.starts_with("trusted.overtier.")) return true;
    if (name.starts_with("user.overtier.")) return true;
    return userxattr_ && name.starts_with("user.overlay.");
  }

 private:
  static constexpr std::string_view kEscape = "overlay.";
  std::string overlay_;
  std::string opaque_, redirect_, impure_, metacopy_, whiteout_, origin_, nlink_;
  bool userxattr_;
};

}  // namespace overtier

#endif  // OVERTIER_UNION_OVERLAY_FORMAT_H_
