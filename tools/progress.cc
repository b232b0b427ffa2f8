#include "tools/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "tools/shown_name.h"

namespace overtier::cli {

Progress::Progress(std::string label, uint64_t total_bytes)
    : label_(MessageSafe(label)), total_(total_bytes), enabled_(isatty(STDERR_FILENO) == 1) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { Clear(); }

void Progress::Update(uint64_t bytes_done, uint64_t items_done) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = secs > 0 ? bytes_done / secs : 0;
  char bar[32] = "";
  if (total_ > 0) {
    int width = 20;
    int filled = static_cast<int>(width * std::min(1.0, double(bytes_done) / total_));
    for (int i = 0; i < width; ++i) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    std::fprintf(stderr, "\r\033[K%s [%s] %3d%% %s, %llu items, %s/s", label_.c_str(), bar,
                 static_cast<int>(100.0 * bytes_done / total_), HumanBytes(bytes_done).c_str(),
                 static_cast<unsigned long long>(items_done),
                 HumanBytes(static_cast<uint64_t>(rate)).c_str());
  } else {
    std::fprintf(stderr, "\r\033[K%s %s, %llu items, %s/s", label_.c_str(),
                 HumanBytes(bytes_done).c_str(), static_cast<unsigned long long>(items_done),
                 HumanBytes(static_cast<uint64_t>(rate)).c_str());
  }
  drawn_ = true;
}

void Progress::Clear() {
  if (enabled_ && drawn_) std::fputs("\r\033[K", stderr);
  drawn_ = false;
}

std::string HumanBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

}  // namespace overtier::cli
