#include "tools/json_out.h"

#include "store/coding.h"

namespace overtier::cli {

std::string JsonText(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace);
}

bool IsUtf8(const std::string& s) {
  // The library's own decoder decides, so that IsUtf8 and JsonText agree.
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

void SetPath(nlohmann::json* j, const std::string& key, const std::string& path) {
  (*j)[key] = path;
  if (!IsUtf8(path)) (*j)[key + "_hex"] = HexString(path);
}

void SetPaths(nlohmann::json* j, const std::string& key, const std::vector<std::string>& paths) {
  (*j)[key] = paths;
  bool all_utf8 = true;
  for (const std::string& p : paths) all_utf8 = all_utf8 && IsUtf8(p);
  if (all_utf8) return;
  nlohmann::json hex = nlohmann::json::array();
  for (const std::string& p : paths) hex.push_back(HexString(p));
  (*j)[key + "_hex"] = std::move(hex);
}

}  // namespace overtier::cli
