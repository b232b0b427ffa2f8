// A one-line progress bar on stderr, drawn only when stderr is a terminal
// (scripts and logs get nothing but the final summary the command prints).
#ifndef OVERTIER_TOOLS_PROGRESS_H_
#define OVERTIER_TOOLS_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace overtier::cli {

class Progress {
 public:
  // total_bytes 0: unknown (no percentage, just counts and rate).
  Progress(std::string label, uint64_t total_bytes);
  ~Progress();  // clears the line
  // Redraws at most 10 times a second.
  void Update(uint64_t bytes_done, uint64_t items_done);
  void Clear();
  bool enabled() const { return enabled_; }

 private:
  std::string label_;
  uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

// "1.5 GiB", "12.0 MiB", "512 B".
std::string HumanBytes(uint64_t bytes);

}  // namespace overtier::cli

#endif  // OVERTIER_TOOLS_PROGRESS_H_
