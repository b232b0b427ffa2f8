// Core of overtier-fsx: the in-memory file model and the deterministic operation stream.
//
// Everything in here is pure computation (no I/O). The operation stream is a function of the
// seed, the parameters and the model state only -- never of what the filesystem returned -- so
// the `verify` subcommand can replay a whole run in memory and know the exact final content of
// every file without having stored it.

#ifndef OVERTIER_TESTS_FSX_FSX_CORE_H_
#define OVERTIER_TESTS_FSX_FSX_CORE_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace fsx {

// Deterministic PRNG (xoshiro256**, seeded through splitmix64). std::mt19937 would be
// deterministic too, but the standard <random> distributions are not portable across library
// implementations, and the op stream must be identical wherever `verify` runs.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, n); n == 0 returns 0.
  uint64_t Below(uint64_t n);
  // Uniform in [lo, hi] (inclusive); requires lo <= hi.
  uint64_t Range(uint64_t lo, uint64_t hi);
  // True with probability num/den.
  bool Chance(uint64_t num, uint64_t den) { return Below(den) < num; }

 private:
  std::array<uint64_t, 4> s_;
};

// Stateless 64-bit mixer used to derive independent seeds (splitmix64 finalizer).
uint64_t Mix(uint64_t a, uint64_t b);

// Fills `out` with the bytes an operation writes. Bytes are never zero, so data can always be
// told apart from a hole, a punched range or a truncated-and-regrown tail.
void FillData(uint64_t data_seed, uint8_t* out, size_t len);

// 64-bit content digest (our own; nothing cryptographic is needed, only a very low chance that
// corrupted content keeps its digest). Covers the size too.
uint64_t Digest(const uint8_t* data, size_t len);

enum class OpenMode : uint8_t { kReadOnly, kReadWrite, kAppend };
const char* OpenModeName(OpenMode m);

enum class OpType : uint8_t {
  kRead,       // pread, possibly across holes and past EOF
  kWrite,      // pwrite (or an append, when the file's fd is O_APPEND)
  kMapRead,    // mmap(MAP_SHARED, PROT_READ)
  kMapWrite,   // ftruncate up if needed, mmap(MAP_SHARED, PROT_WRITE), msync
  kTruncate,   // ftruncate up or down
  kFallocate,  // fallocate with `falloc_mode`
  kCopyRange,  // copy_file_range(file2 -> file)
  kReopen,     // close and reopen with `open_mode` (and O_TRUNC if `trunc`)
  kFsync,
  kFdatasync,
  kStaleRead,  // pread through an O_RDONLY fd opened before the run (i.e. before copy-up)
  kCount,
};
const char* OpTypeName(OpType t);
// "plain", "KEEP_SIZE", "PUNCH_HOLE|KEEP_SIZE", ...
std::string FallocModeName(int mode);

// Which optional operations the filesystem under test supports. Probed by `run` before the
// first op and stored in the state file: the op stream depends on it.
struct Features {
  bool falloc = true;       // mode 0
  bool falloc_keep = true;  // FALLOC_FL_KEEP_SIZE
  bool punch = true;        // FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
  bool zero_range = true;   // FALLOC_FL_ZERO_RANGE (with and without KEEP_SIZE)
  bool mmap = true;         // shared mappings (FUSE direct_io can refuse them)
  bool copy_range = true;   // copy_file_range
  std::string ToString() const;
  static bool Parse(const std::string& s, Features* out);
};

// Parameters that define a run's op stream. Anything that changes which ops are generated
// belongs here (and in the state file).
struct Params {
  uint64_t seed = 1;
  uint32_t files = 8;
  uint64_t ops = 10000;
  uint32_t jobs = 1;
  uint64_t max_size = 256 * 1024;
  uint64_t max_len = 64 * 1024;
  bool stale_fds = false;
  Features features;
};

// Files are named f0000, f0001, ... and job j owns the files whose index is j modulo jobs.
std::string FileName(uint32_t index);
std::vector<uint32_t> JobFiles(const Params& p, uint32_t job);
uint64_t JobOps(const Params& p, uint32_t job);

struct FileModel {
  uint32_t index = 0;
  std::vector<uint8_t> data;  // size() is the file size
  // For each byte, the op number (1-based) that last set it; 0 means "initial content".
  // Only used to make failure reports precise.
  std::vector<uint64_t> writer;
  OpenMode mode = OpenMode::kReadOnly;
  // Ops before this number never modify the file, so it stays in the lower layer (and gets read
  // there) for a while before its first write triggers the copy-up.
  uint64_t writable_from = 0;

  uint64_t size() const { return data.size(); }
  void Resize(uint64_t n, uint64_t op);
  void Write(uint64_t off, const uint8_t* buf, uint64_t len, uint64_t op);
  void Zero(uint64_t off, uint64_t len, uint64_t op);  // clipped to the current size
};

// Initial content of file `index` (what `prepare` writes). `holes` receives [begin, end) ranges
// that prepare leaves unwritten so the lower file is sparse.
void InitialContent(uint64_t seed, uint32_t index, uint64_t max_size, std::vector<uint8_t>* data,
                    std::vector<std::pair<uint64_t, uint64_t>>* holes);
// Content of a decoy copy of file `index` placed in layer `layer`, below the layer that really
// holds the file. It differs from the real content, so reading the wrong layer is caught.
void DecoyContent(uint64_t seed, uint32_t index, uint32_t layer, uint64_t max_size,
                  std::vector<uint8_t>* data);
// Which of `nlayers` lower layers (0 = top) holds file `index`.
uint32_t FileLayer(uint64_t seed, uint32_t index, uint32_t nlayers);

struct Op {
  uint64_t n = 0;  // 1-based op number within the job
  OpType type = OpType::kRead;
  uint32_t file = 0;   // index into the job's model vector
  uint32_t file2 = 0;  // copy source
  uint64_t off = 0;
  uint64_t len = 0;
  uint64_t off2 = 0;  // copy source offset
  int falloc_mode = 0;
  OpenMode open_mode = OpenMode::kReadOnly;
  bool trunc = false;
  // Set when the op needs a writable (or non-append) fd and the current one is not: the file is
  // reopened with `reopen_to` first. This is what makes the first write to a lower file happen
  // through a fresh O_RDWR open, the classic copy-up trigger.
  bool reopen_first = false;
  OpenMode reopen_to = OpenMode::kReadWrite;
  // kMapWrite: how the mapping is flushed before munmap. All three are valid: MAP_SHARED
  // stores must be visible to read() at once, and MS_SYNC on every op makes runs I/O bound.
  enum class Msync : uint8_t { kSync, kAsync, kNone } msync = Msync::kSync;
  uint64_t data_seed = 0;
};

std::string DescribeOp(const Op& op, const std::vector<FileModel>& files);

// One job's model and op stream.
class Simulation {
 public:
  Simulation(const Params& p, uint32_t job);

  const Params& params() const { return p_; }
  uint32_t job() const { return job_; }
  uint64_t total_ops() const { return total_ops_; }
  uint64_t ops_done() const { return next_n_ - 1; }
  std::vector<FileModel>& files() { return files_; }
  const std::vector<FileModel>& files() const { return files_; }

  // Generates the next op from the RNG and the current model. Does not change the model.
  Op Generate();
  // Applies op to the model (including the reopen_first step).
  void Apply(const Op& op);
  // Generate + Apply for all remaining ops (the `verify` replay).
  void RunToEnd();

 private:
  uint64_t PickReadOffset(const FileModel& f);
  uint64_t PickOffset(uint64_t limit);
  uint64_t PickLen(uint64_t max);

  Params p_;
  uint32_t job_;
  uint64_t total_ops_;
  Rng rng_;
  uint64_t next_n_ = 1;
  std::vector<FileModel> files_;
};

}  // namespace fsx

#endif  // OVERTIER_TESTS_FSX_FSX_CORE_H_
