// Text that is safe to print: file names are any bytes but '/' and NUL, and
// a name printed raw can carry an escape sequence into a terminal or a new
// line into a log (a forged line, or a syslog record split in two). Every
// layer that prints a name it did not choose (the daemon's log, the
// command-line tool) passes it through MessageSafe; the tool's stdout
// listings quote instead (tools/shown_name.h), built on the same pieces.
#ifndef OVERTIER_PRINTABLE_H_
#define OVERTIER_PRINTABLE_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace overtier {

// The length of the UTF-8 sequence at s[i] (i < s.size()) and its code
// point; 0 when the bytes there are not one (overlong forms, surrogates and
// values past U+10FFFF included).
inline size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n;
  uint32_t v, min;
  if ((c & 0xe0) == 0xc0) {
    n = 2, v = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3, v = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4, v = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

// C0 controls, DEL and C1 controls (U+0080..U+009F: U+009B is a one-byte
// CSI to some terminals).
inline bool IsControlCodePoint(uint32_t cp) {
  return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0);
}

// One byte as a C escape: \n, \t, ... or three octal digits (\033, \377),
// the form both bash's $'...' and a reader of a log understand.
inline void AppendCEscape(unsigned char c, std::string* out) {
  const char* named = nullptr;
  switch (c) {
    case '\a':
      named = "\\a";
      break;
    case '\b':
      named = "\\b";
      break;
    case '\t':
      named = "\\t";
      break;
    case '\n':
      named = "\\n";
      break;
    case '\v':
      named = "\\v";
      break;
    case '\f':
      named = "\\f";
      break;
    case '\r':
      named = "\\r";
      break;
  }
  if (named != nullptr) {
    *out += named;
    return;
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\%03o", c);
  *out += buf;
}

// `text` with every control character (C0, DEL, C1) and every byte that is
// not UTF-8 written as a C escape; everything else unchanged.
inline std::string MessageSafe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(text, i, &cp);
    if (n == 0 || IsControlCodePoint(cp)) {
      for (size_t k = 0; k < (n == 0 ? 1 : n); ++k)
        AppendCEscape(static_cast<unsigned char>(text[i + k]), &out);
      i += n == 0 ? 1 : n;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace overtier

#endif  // OVERTIER_PRINTABLE_H_
