// The JSON the command-line tool prints. File names are bytes and JSON
// strings are Unicode: nlohmann::json throws when it meets a byte sequence
// that is not UTF-8 (the default `strict` handler), which ended
// `overtier status --json` on a file named in Latin-1 with std::terminate.
// Everything the tool prints as JSON goes through JsonText, which writes
// such bytes as U+FFFD instead of throwing; a path, which a script needs
// byte for byte, also gets its bytes in hex beside it (SetPath).
#ifndef OVERTIER_TOOLS_JSON_OUT_H_
#define OVERTIER_TOOLS_JSON_OUT_H_

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace overtier::cli {

// j.dump(indent), with bytes that are not UTF-8 written as U+FFFD.
std::string JsonText(const nlohmann::json& j, int indent = -1);

// True if `s` is valid UTF-8 (what JSON can carry unchanged).
bool IsUtf8(const std::string& s);

// (*j)[key] = path; when path is not UTF-8, also (*j)[key + "_hex"] = its
// bytes in lowercase hex, since the string itself will show U+FFFD.
void SetPath(nlohmann::json* j, const std::string& key, const std::string& path);

// The same for a list: (*j)[key] = paths, and (*j)[key + "_hex"] = all of
// them in hex, in the same order, when any one is not UTF-8.
void SetPaths(nlohmann::json* j, const std::string& key, const std::vector<std::string>& paths);

}  // namespace overtier::cli

#endif  // OVERTIER_TOOLS_JSON_OUT_H_
