#include "fsx_core.h"

#include <fcntl.h>
#include <linux/falloc.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>

namespace fsx {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();

uint64_t SplitMix(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// Domain separators so that the seeds derived for different purposes never coincide.
constexpr uint64_t kInitDomain = 0x1417'0000'0000'0001ULL;
constexpr uint64_t kDecoyDomain = 0xdec0'0000'0000'0002ULL;
constexpr uint64_t kLayerDomain = 0x1a7e'0000'0000'0003ULL;
constexpr uint64_t kJobDomain = 0x0b00'0000'0000'0004ULL;
constexpr uint64_t kDataDomain = 0xda7a'0000'0000'0005ULL;

}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& w : s_) w = SplitMix(&x);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

uint64_t Rng::Below(uint64_t n) {
  if (n == 0) return 0;
  // Multiply-shift: a negligible bias for our ranges, and fully deterministic.
  return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
}

uint64_t Rng::Range(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ Rotl(b, 29) ^ 0x2545f4914f6cdd1dULL;
  SplitMix(&x);
  x ^= b;
  return SplitMix(&x);
}

void FillData(uint64_t data_seed, uint8_t* out, size_t len) {
  uint64_t x = data_seed;
  size_t i = 0;
  while (i < len) {
    uint64_t w = SplitMix(&x);
    for (int k = 0; k < 8 && i < len; ++k, ++i) {
      uint8_t b = static_cast<uint8_t>(w >> (8 * k));
      out[i] = b == 0 ? 0xa5 : b;
    }
  }
}

uint64_t Digest(const uint8_t* data, size_t len) {
  uint64_t h = 0x6a09e667f3bcc908ULL ^ (len * 0x9e3779b97f4a7c15ULL);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    h = Rotl(h ^ (w * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
  }
  uint64_t tail = 0;
  for (size_t k = 0; i < len; ++i, ++k) tail |= static_cast<uint64_t>(data[i]) << (8 * k);
  h = Rotl(h ^ (tail * 0x87c37b91114253d5ULL), 31) * 0x4cf5ad432745937fULL;
  uint64_t x = h;
  return SplitMix(&x);
}

const char* OpenModeName(OpenMode m) {
  switch (m) {
    case OpenMode::kReadOnly:
      return "rdonly";
    case OpenMode::kReadWrite:
      return "rdwr";
    case OpenMode::kAppend:
      return "rdwr|append";
  }
  return "?";
}

const char* OpTypeName(OpType t) {
  switch (t) {
    case OpType::kRead:
      return "read";
    case OpType::kWrite:
      return "write";
    case OpType::kMapRead:
      return "mapread";
    case OpType::kMapWrite:
      return "mapwrite";
    case OpType::kTruncate:
      return "truncate";
    case OpType::kFallocate:
      return "fallocate";
    case OpType::kCopyRange:
      return "copy_range";
    case OpType::kReopen:
      return "reopen";
    case OpType::kFsync:
      return "fsync";
    case OpType::kFdatasync:
      return "fdatasync";
    case OpType::kStaleRead:
      return "stale_read";
    case OpType::kCount:
      break;
  }
  return "?";
}

std::string FallocModeName(int mode) {
  std::string s;
  if (mode & FALLOC_FL_PUNCH_HOLE) s += "PUNCH_HOLE";
  if (mode & FALLOC_FL_ZERO_RANGE) s += "ZERO_RANGE";
  if (mode & FALLOC_FL_KEEP_SIZE) s += s.empty() ? "KEEP_SIZE" : "|KEEP_SIZE";
  return s.empty() ? "plain" : s;
}

std::string Features::ToString() const {
  std::ostringstream o;
  o << "falloc=" << falloc << ",keep_size=" << falloc_keep << ",punch=" << punch
    << ",zero_range=" << zero_range << ",mmap=" << mmap << ",copy_range=" << copy_range;
  return o.str();
}

bool Features::Parse(const std::string& s, Features* out) {
  Features f;
  std::istringstream in(s);
  std::string item;
  int seen = 0;
  while (std::getline(in, item, ',')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) return false;
    std::string key = item.substr(0, eq);
    bool v = item.substr(eq + 1) == "1";
    if (key == "falloc") {
      f.falloc = v;
    } else if (key == "keep_size") {
      f.falloc_keep = v;
    } else if (key == "punch") {
      f.punch = v;
    } else if (key == "zero_range") {
      f.zero_range = v;
    } else if (key == "mmap") {
      f.mmap = v;
    } else if (key == "copy_range") {
      f.copy_range = v;
    } else {
      return false;
    }
    ++seen;
  }
  if (seen != 6) return false;
  *out = f;
  return true;
}

std::string FileName(uint32_t index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "f%04u", index);
  return buf;
}

std::vector<uint32_t> JobFiles(const Params& p, uint32_t job) {
  std::vector<uint32_t> out;
  for (uint32_t i = job; i < p.files; i += p.jobs) out.push_back(i);
  return out;
}

uint64_t JobOps(const Params& p, uint32_t job) {
  return p.ops / p.jobs + (job < p.ops % p.jobs ? 1 : 0);
}

void FileModel::Resize(uint64_t n, uint64_t op) {
  data.resize(n, 0);
  writer.resize(n, op);
}

void FileModel::Write(uint64_t off, const uint8_t* buf, uint64_t len, uint64_t op) {
  if (off + len > data.size()) Resize(off + len, op);
  std::memcpy(data.data() + off, buf, len);
  std::fill(writer.begin() + off, writer.begin() + off + len, op);
}

void FileModel::Zero(uint64_t off, uint64_t len, uint64_t op) {
  if (off >= data.size()) return;
  uint64_t end = std::min<uint64_t>(off + len, data.size());
  std::fill(data.begin() + off, data.begin() + end, 0);
  std::fill(writer.begin() + off, writer.begin() + end, op);
}

void InitialContent(uint64_t seed, uint32_t index, uint64_t max_size, std::vector<uint8_t>* data,
                    std::vector<std::pair<uint64_t, uint64_t>>* holes) {
  Rng r(Mix(Mix(seed, kInitDomain), index));
  uint64_t size;
  switch (r.Below(8)) {
    case 0:
      size = 0;
      break;
    case 1:
      size = max_size;
      break;
    case 2: {  // whole pages
      const uint64_t pages = max_size / kPage;
      size = pages == 0 ? max_size : r.Range(1, pages) * kPage;
      break;
    }
    default:
      size = r.Range(1, max_size);
      break;
  }
  data->assign(size, 0);
  FillData(Mix(Mix(seed, kInitDomain), 0x100000000ULL + index), data->data(), size);
  holes->clear();
  // Half of the bigger files get a hole, sometimes running to EOF, so that copy-up of sparse
  // lower files and reads across holes in the lower layer are exercised.
  if (size > 2 * kPage && r.Chance(1, 2)) {
    uint64_t a = r.Below(size);
    uint64_t b = r.Chance(1, 4) ? size : std::min(size, a + r.Range(1, size / 2));
    std::fill(data->begin() + a, data->begin() + b, 0);
    holes->emplace_back(a, b);
  }
}

void DecoyContent(uint64_t seed, uint32_t index, uint32_t layer, uint64_t max_size,
                  std::vector<uint8_t>* data) {
  Rng r(Mix(Mix(seed, kDecoyDomain), uint64_t{index} * 64 + layer));
  data->assign(r.Range(1, max_size), 0);
  FillData(r.Next(), data->data(), data->size());
}

uint32_t FileLayer(uint64_t seed, uint32_t index, uint32_t nlayers) {
  return static_cast<uint32_t>(Mix(Mix(seed, kLayerDomain), index) % nlayers);
}

std::string DescribeOp(const Op& op, const std::vector<FileModel>& files) {
  std::ostringstream o;
  const std::string name = FileName(files[op.file].index);
  o << "#" << op.n << " " << OpTypeName(op.type) << " " << name;
  switch (op.type) {
    case OpType::kRead:
    case OpType::kWrite:
    case OpType::kMapRead:
    case OpType::kMapWrite:
    case OpType::kStaleRead:
      o << " off=" << op.off << " len=" << op.len << " end=" << op.off + op.len;
      if (op.type == OpType::kMapWrite) {
        o << (op.msync == Op::Msync::kSync    ? " msync=SYNC"
              : op.msync == Op::Msync::kAsync ? " msync=ASYNC"
                                              : " no-msync");
      }
      break;
    case OpType::kTruncate:
      o << " size=" << op.off;
      break;
    case OpType::kFallocate:
      o << " mode=" << FallocModeName(op.falloc_mode) << " off=" << op.off << " len=" << op.len
        << " end=" << op.off + op.len;
      break;
    case OpType::kCopyRange:
      o << " <- " << FileName(files[op.file2].index) << " src_off=" << op.off2
        << " dst_off=" << op.off << " len=" << op.len;
      break;
    case OpType::kReopen:
      o << " " << OpenModeName(op.open_mode) << (op.trunc ? "|trunc" : "");
      break;
    case OpType::kFsync:
    case OpType::kFdatasync:
    case OpType::kCount:
      break;
  }
  if (op.reopen_first) o << " (after reopen " << OpenModeName(op.reopen_to) << ")";
  return o.str();
}

Simulation::Simulation(const Params& p, uint32_t job)
    : p_(p), job_(job), total_ops_(JobOps(p, job)), rng_(Mix(Mix(p.seed, kJobDomain), job)) {
  std::vector<std::pair<uint64_t, uint64_t>> holes;
  for (uint32_t idx : JobFiles(p, job)) {
    FileModel f;
    f.index = idx;
    InitialContent(p.seed, idx, p.max_size, &f.data, &holes);
    f.writer.assign(f.data.size(), 0);
    f.mode = OpenMode::kReadOnly;
    files_.push_back(std::move(f));
  }
  // The first file of each job may be written from the start; one in eight is never written
  // (it is only ever read, from the lower layer); the rest become writable at a random point in
  // the first quarter of the run, so they are read for a while before being copied up.
  for (size_t i = 0; i < files_.size(); ++i) {
    if (i == 0) {
      files_[i].writable_from = 0;
    } else if (rng_.Chance(1, 8)) {
      files_[i].writable_from = kNever;
    } else {
      files_[i].writable_from = rng_.Below(total_ops_ / 4 + 1);
    }
  }
}

uint64_t Simulation::PickOffset(uint64_t limit) {
  if (limit == 0) return 0;
  uint64_t v = rng_.Below(limit);
  if (rng_.Chance(1, 6)) v &= ~(kPage - 1);  // page aligned
  return v;
}

uint64_t Simulation::PickLen(uint64_t max) {
  if (max <= 1) return 1;
  switch (rng_.Below(10)) {
    case 0:
      return rng_.Range(1, std::min<uint64_t>(16, max));  // tiny
    case 1:
    case 2:
      if (max >= kPage) return rng_.Range(1, max / kPage) * kPage;  // whole pages
      [[fallthrough]];
    default:
      return rng_.Range(1, max);
  }
}

uint64_t Simulation::PickReadOffset(const FileModel& f) {
  switch (rng_.Below(16)) {
    case 0:
      return 0;
    case 1:
      return f.size();  // exactly at EOF
    default:
      // Reaches past EOF now and then.
      return PickOffset(f.size() + p_.max_len / 4 + 1);
  }
}

Op Simulation::Generate() {
  Op op;
  op.n = next_n_;
  op.data_seed = Mix(Mix(p_.seed, kDataDomain), (uint64_t{job_} << 48) ^ op.n);
  op.file = static_cast<uint32_t>(rng_.Below(files_.size()));
  const FileModel& f = files_[op.file];
  const bool writable = op.n >= f.writable_from;
  const bool any_falloc =
      p_.features.falloc || p_.features.falloc_keep || p_.features.punch || p_.features.zero_range;

  // Weights out of their sum; unsupported ops get weight 0.
  struct Weight {
    OpType type;
    uint64_t w;
  };
  const Weight table[] = {
      {OpType::kRead, 200},
      {OpType::kWrite, 190},
      {OpType::kMapRead, p_.features.mmap ? 70u : 0u},
      {OpType::kMapWrite, p_.features.mmap ? 70u : 0u},
      {OpType::kTruncate, 50},
      {OpType::kFallocate, any_falloc ? 80u : 0u},
      {OpType::kCopyRange, p_.features.copy_range ? 60u : 0u},
      {OpType::kReopen, 60},
      {OpType::kFsync, 5},  // rare: each one is a disk flush underneath
      {OpType::kFdatasync, 5},
      {OpType::kStaleRead, p_.stale_fds ? 40u : 0u},
  };
  uint64_t total = 0;
  for (const auto& e : table) total += e.w;
  uint64_t pick = rng_.Below(total);
  for (const auto& e : table) {
    if (pick < e.w) {
      op.type = e.type;
      break;
    }
    pick -= e.w;
  }

  const bool mutating = op.type == OpType::kWrite || op.type == OpType::kMapWrite ||
                        op.type == OpType::kTruncate || op.type == OpType::kFallocate ||
                        op.type == OpType::kCopyRange;
  if (mutating && !writable) op.type = OpType::kRead;

  // Ops that write need a writable fd; copy_file_range also refuses an O_APPEND destination.
  OpenMode mode = f.mode;
  auto need = [&](bool allow_append) {
    if (mode == OpenMode::kReadOnly || (mode == OpenMode::kAppend && !allow_append)) {
      op.reopen_first = true;
      op.reopen_to = (allow_append && rng_.Chance(1, 4)) ? OpenMode::kAppend : OpenMode::kReadWrite;
      mode = op.reopen_to;
    }
  };

  switch (op.type) {
    case OpType::kRead:
    case OpType::kStaleRead:
      op.off = PickReadOffset(f);
      op.len = PickLen(p_.max_len);
      break;
    case OpType::kWrite: {
      need(true);
      if (mode == OpenMode::kAppend) {
        // pwrite() on an O_APPEND fd appends on Linux whatever the offset; model exactly that.
        op.off = f.size();
        if (f.size() >= p_.max_size) {
          op.type = OpType::kRead;  // would grow past max_size; read the tail instead
          op.len = PickLen(p_.max_len);
          break;
        }
        op.len = std::min(PickLen(p_.max_len), p_.max_size - f.size());
      } else {
        op.off = PickOffset(p_.max_size);
        op.len = std::min(PickLen(p_.max_len), p_.max_size - op.off);
      }
      break;
    }
    case OpType::kMapRead:
      if (f.size() == 0) {
        op.type = OpType::kRead;
        op.off = 0;
        op.len = PickLen(p_.max_len);
        break;
      }
      op.off = rng_.Below(f.size());
      op.len = std::min(PickLen(p_.max_len), f.size() - op.off);
      break;
    case OpType::kMapWrite:
      need(true);
      op.off = PickOffset(p_.max_size);
      op.len = std::min(PickLen(p_.max_len), p_.max_size - op.off);
      op.msync = static_cast<Op::Msync>(rng_.Below(3));
      break;
    case OpType::kTruncate:
      need(true);
      switch (rng_.Below(8)) {
        case 0:
          op.off = 0;
          break;
        case 1:  // shrink a little: leaves a partial page with data before EOF
          op.off = f.size() - std::min(f.size(), rng_.Range(1, 100));
          break;
        default:
          op.off = PickOffset(p_.max_size + 1);
          break;
      }
      break;
    case OpType::kFallocate: {
      need(true);
      std::vector<int> modes;
      if (p_.features.falloc) modes.push_back(0);
      if (p_.features.falloc_keep) modes.push_back(FALLOC_FL_KEEP_SIZE);
      if (p_.features.punch) modes.push_back(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);
      if (p_.features.zero_range) {
        modes.push_back(FALLOC_FL_ZERO_RANGE);
        modes.push_back(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
      }
      op.falloc_mode = modes[rng_.Below(modes.size())];
      op.off = PickOffset(p_.max_size);
      op.len = std::min(PickLen(p_.max_len), p_.max_size - op.off);
      break;
    }
    case OpType::kCopyRange: {
      need(false);
      op.file2 = static_cast<uint32_t>(rng_.Below(files_.size()));
      op.len = PickLen(p_.max_len);
      op.off2 = PickReadOffset(files_[op.file2]);
      op.off = rng_.Below(p_.max_size - op.len + 1);
      // The kernel rejects overlapping ranges within one file; move to another file if any.
      if (op.file2 == op.file && op.off < op.off2 + op.len && op.off2 < op.off + op.len) {
        if (files_.size() > 1) {
          op.file2 = (op.file + 1) % files_.size();
        } else {
          op.type = OpType::kRead;
          op.off = PickReadOffset(f);
        }
      }
      break;
    }
    case OpType::kReopen:
      if (writable) {
        op.open_mode = static_cast<OpenMode>(rng_.Below(3));
        op.trunc = op.open_mode != OpenMode::kReadOnly && rng_.Chance(1, 16);
      } else {
        // Opening for write would copy the file up early.
        op.open_mode = OpenMode::kReadOnly;
      }
      break;
    case OpType::kFsync:
    case OpType::kFdatasync:
    case OpType::kCount:
      break;
  }
  return op;
}

void Simulation::Apply(const Op& op) {
  FileModel& f = files_[op.file];
  if (op.reopen_first) f.mode = op.reopen_to;
  switch (op.type) {
    case OpType::kRead:
    case OpType::kMapRead:
    case OpType::kStaleRead:
    case OpType::kFsync:
    case OpType::kFdatasync:
    case OpType::kCount:
      break;
    case OpType::kWrite:
    case OpType::kMapWrite: {
      std::vector<uint8_t> buf(op.len);
      FillData(op.data_seed, buf.data(), buf.size());
      f.Write(op.off, buf.data(), op.len, op.n);
      break;
    }
    case OpType::kTruncate:
      f.Resize(op.off, op.n);
      break;
    case OpType::kFallocate: {
      const bool keep = op.falloc_mode & FALLOC_FL_KEEP_SIZE;
      if (op.falloc_mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
        f.Zero(op.off, op.len, op.n);
      if (!keep && op.off + op.len > f.size()) f.Resize(op.off + op.len, op.n);
      break;
    }
    case OpType::kCopyRange: {
      const FileModel& src = files_[op.file2];
      if (op.off2 < src.size()) {
        uint64_t n = std::min(op.len, src.size() - op.off2);
        // Copy out first: src may be f, and Write may reallocate it.
        std::vector<uint8_t> buf(src.data.begin() + op.off2, src.data.begin() + op.off2 + n);
        f.Write(op.off, buf.data(), n, op.n);
      }
      break;
    }
    case OpType::kReopen:
      f.mode = op.open_mode;
      if (op.trunc) f.Resize(0, op.n);
      break;
  }
  ++next_n_;
}

void Simulation::RunToEnd() {
  while (ops_done() < total_ops_) Apply(Generate());
}

}  // namespace fsx
