#include "tools/shown_name.h"

#include <unistd.h>

#include <cstdint>

#include "overtier/printable.h"

namespace overtier::cli {
namespace {

// Characters a POSIX shell reads as part of a plain word anywhere in it.
bool ShellPlain(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '%':
    case '+':
    case ',':
    case '-':
    case '.':
    case '/':
    case ':':
    case '=':
    case '@':
    case '_':
      return true;
  }
  return false;
}

}  // namespace

std::string ShellQuote(std::string_view name) {
  bool plain = !name.empty();
  for (size_t i = 0; plain && i < name.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(name, i, &cp);
    if (n == 0 ||
        (cp < 0x80 ? !ShellPlain(static_cast<unsigned char>(cp)) : IsControlCodePoint(cp))) {
      plain = false;
    }
    i += n == 0 ? 1 : n;
  }
  if (plain) return std::string(name);
  if (name.empty()) return "''";
  // Runs of printable characters in '...', runs of the rest in $'...',
  // and a single quote as \' between them.
  enum { kNone, kQuoted, kEscaped } open = kNone;
  std::string out;
  auto enter = [&](decltype(open) want) {
    if (open == want) return;
    if (open != kNone) out += '\'';
    if (want == kQuoted) out += '\'';
    if (want == kEscaped) out += "$'";
    open = want;
  };
  for (size_t i = 0; i < name.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(name, i, &cp);
    if (n == 0 || IsControlCodePoint(cp)) {
      enter(kEscaped);
      for (size_t k = 0; k < (n == 0 ? 1 : n); ++k)
        AppendCEscape(static_cast<unsigned char>(name[i + k]), &out);
      i += n == 0 ? 1 : n;
    } else if (cp == '\'') {
      enter(kNone);
      out += "\\'";
      i += 1;
    } else {
      enter(kQuoted);
      out.append(name.substr(i, n));
      i += n;
    }
  }
  enter(kNone);
  return out;
}

std::string ShownName(std::string_view name, bool terminal) {
  return terminal ? ShellQuote(name) : std::string(name);
}

bool StdoutIsTerminal() {
  static const bool tty = isatty(STDOUT_FILENO) == 1;
  return tty;
}

}  // namespace overtier::cli
