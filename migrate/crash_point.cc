#include "migrate/crash_point.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace overtier {

void CrashPoint(const char* name) {
  static const char* const armed = std::getenv("OVERTIER_CRASH_AT");
  if (armed == nullptr || std::strcmp(armed, name) != 0) return;
  raise(SIGKILL);
}

namespace {

std::function<void(const char*)>& Hook() {
  static std::function<void(const char*)> hook;
  return hook;
}

// Whether `name` is one of the comma-separated names of `list`.
bool Listed(std::string_view list, std::string_view name) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (list.substr(0, comma) == name) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

void SetPauseHook(std::function<void(const char*)> hook) { Hook() = std::move(hook); }

void PausePoint(const char* name) {
  if (Hook()) Hook()(name);
  static const char* const armed = std::getenv("OVERTIER_PAUSE_AT");
  static const char* const dir = std::getenv("OVERTIER_PAUSE_DIR");
  if (armed == nullptr || dir == nullptr || !Listed(armed, name)) return;
  const std::string base = std::string(dir) + "/" + name;
  const std::string hold = base + ".hold";
  struct stat st;
  if (stat(hold.c_str(), &st) != 0) return;
  // A non-empty hold file holds only the first thread to get here: the
  // one that creates the reached file.
  const bool first_only = st.st_size > 0;
  const int fd = open((base + ".reached").c_str(),
                      O_WRONLY | O_CREAT | O_CLOEXEC | (first_only ? O_EXCL : 0), 0644);
  if (fd < 0 && first_only) return;
  if (fd >= 0) close(fd);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (stat(hold.c_str(), &st) == 0 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

}  // namespace overtier
