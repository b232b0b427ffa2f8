// How the command-line tool shows a file name to a person.
//
// A file name is any bytes but '/' and NUL: a user can name a file with an
// escape sequence that recolours, moves or rewrites an administrator's
// terminal when `overtier ls -l`, `status`, `policy check` or `fsck`
// prints it raw, or with a newline that forges a line of the output. GNU
// ls quotes names on a terminal for that reason (its "shell-escape"
// style) and prints them as they are into a pipe, where scripts read them.
// The tool does the same on stdout (ShownName). Messages on stderr are for
// people and logs whether or not a terminal reads them: there control
// characters and bytes that are not UTF-8 are always escaped
// (MessageSafe, include/overtier/printable.h), and nothing else changes.
#ifndef OVERTIER_TOOLS_SHOWN_NAME_H_
#define OVERTIER_TOOLS_SHOWN_NAME_H_

#include <string>
#include <string_view>

#include "overtier/printable.h"

namespace overtier::cli {

// `name` unchanged when a shell would read it back as the same word
// (letters, digits, `%+,-./:=@_` and printable UTF-8); else quoted so that
// it would: 'a b', 'it'\''s', 'a'$'\n''b', 'bad'$'\377'. Control
// characters (C0, DEL, C1) and bytes that are not UTF-8 go into $'...'
// escapes, so nothing of the name reaches the terminal as a control.
std::string ShellQuote(std::string_view name);

// What ls prints: ShellQuote(name) on a terminal, `name` itself otherwise.
std::string ShownName(std::string_view name, bool terminal);

// Whether stdout is a terminal (read once).
bool StdoutIsTerminal();

}  // namespace overtier::cli

#endif  // OVERTIER_TOOLS_SHOWN_NAME_H_
