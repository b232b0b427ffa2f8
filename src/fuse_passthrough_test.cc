#include "src/fuse_passthrough.h"

#include <gtest/gtest.h>
#include <linux/fuse.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace overtier {
namespace {

// The fields as the kernel's protocol 7.40 lays them out (fuse_init_in:
// flags at 12, flags2 at 16; fuse_init_out: flags at 12, flags2 at 32,
// max_stack_depth at 36; fuse_open_out: open_flags at 8, backing_id at 12).
uint32_t At(const std::vector<char>& b, size_t off) {
  uint32_t v;
  std::memcpy(&v, b.data() + off, 4);
  return v;
}
void Set(std::vector<char>* b, size_t off, uint32_t v) { std::memcpy(b->data() + off, &v, 4); }

std::vector<char> InitRequest(uint32_t flags, uint32_t flags2) {
  std::vector<char> m(sizeof(fuse_in_header) + 64, 0);
  fuse_in_header h{};
  h.len = static_cast<uint32_t>(m.size());
  h.opcode = FUSE_INIT;
  std::memcpy(m.data(), &h, sizeof(h));
  Set(&m, sizeof(h) + 0, 7);
  Set(&m, sizeof(h) + 12, flags);
  Set(&m, sizeof(h) + 16, flags2);
  return m;
}

TEST(FusePassthroughTest, InitRequestOffersPassthroughOnlyWithTheExtendedFlags) {
  auto yes = InitRequest(1u << 30, 1u << 5);
  EXPECT_TRUE(ParseInitRequest(yes.data(), yes.size()).passthrough);
  auto no_ext = InitRequest(0, 1u << 5);
  EXPECT_FALSE(ParseInitRequest(no_ext.data(), no_ext.size()).passthrough);
  auto no_pt = InitRequest(1u << 30, 0);
  EXPECT_FALSE(ParseInitRequest(no_pt.data(), no_pt.size()).passthrough);
  EXPECT_FALSE(ParseInitRequest(yes.data(), sizeof(fuse_in_header) + 8).passthrough);
  auto lookup = InitRequest(1u << 30, 1u << 5);
  reinterpret_cast<fuse_in_header*>(lookup.data())->opcode = FUSE_LOOKUP;
  EXPECT_FALSE(ParseInitRequest(lookup.data(), lookup.size()).passthrough);
}

TEST(FusePassthroughTest, InitRequestOffersKillprivV2InTheFirstFlags) {
  auto yes = InitRequest(1u << 28, 0);
  EXPECT_TRUE(ParseInitRequest(yes.data(), yes.size()).killpriv_v2);
  EXPECT_FALSE(ParseInitRequest(yes.data(), yes.size()).passthrough);
  auto no = InitRequest((1u << 30) | (1u << 19), 1u << 5);  // FUSE_HANDLE_KILLPRIV (v1)
  EXPECT_FALSE(ParseInitRequest(no.data(), no.size()).killpriv_v2);
}

TEST(FusePassthroughTest, InitReplyAsksForPassthroughInsteadOfTheWritebackCache) {
  fuse_out_header h{};
  std::vector<char> out(64, 0);
  Set(&out, 0, FUSE_KERNEL_VERSION);
  Set(&out, 4, 31);
  Set(&out, 12, (1u << 16) | 1u);  // writeback cache + async read
  iovec iov[2] = {{&h, sizeof(h)}, {out.data(), out.size()}};
  InitPatch pt;
  pt.passthrough = true;
  ASSERT_TRUE(PatchInitReply(iov, 2, pt));
  EXPECT_EQ(At(out, 12), (1u << 30) | 1u);
  EXPECT_EQ(At(out, 32), 1u << 5);
  EXPECT_EQ(At(out, 36), 1u);
  h.error = -EIO;  // an error reply is left alone
  EXPECT_FALSE(PatchInitReply(iov, 2, pt));
  EXPECT_FALSE(PatchInitReply(iov, 1, pt));
}

TEST(FusePassthroughTest, InitReplyAsksForKillprivV2AloneKeepingTheWritebackCache) {
  fuse_out_header h{};
  std::vector<char> out(64, 0);
  Set(&out, 0, FUSE_KERNEL_VERSION);
  Set(&out, 4, 31);
  Set(&out, 12, (1u << 16) | 1u);
  iovec iov[2] = {{&h, sizeof(h)}, {out.data(), out.size()}};
  InitPatch kp;
  kp.killpriv_v2 = true;
  ASSERT_TRUE(PatchInitReply(iov, 2, kp));
  EXPECT_EQ(At(out, 12), (1u << 28) | (1u << 16) | 1u);
  EXPECT_EQ(At(out, 32), 0u);
  EXPECT_EQ(At(out, 36), 0u);
}

TEST(FusePassthroughTest, OpenReplyCarriesTheBackingIdInItsLastSixteenBytes) {
  fuse_out_header h{};
  std::vector<char> create(128 + 16, 0);  // entry_out then open_out
  Set(&create, 128 + 8, 1u);              // FOPEN_DIRECT_IO
  iovec iov[2] = {{&h, sizeof(h)}, {create.data(), create.size()}};
  ASSERT_TRUE(PatchOpenReply(iov, 2, 42));
  EXPECT_EQ(At(create, 128 + 8), (1u << 7) | 1u);
  EXPECT_EQ(At(create, 128 + 12), 42u);
  EXPECT_EQ(At(create, 0), 0u);  // the entry is untouched
  std::vector<char> tiny(8, 0);
  iovec bad[2] = {{&h, sizeof(h)}, {tiny.data(), tiny.size()}};
  EXPECT_FALSE(PatchOpenReply(bad, 2, 42));
}

TEST(FuseTmpfileTest, ATmpfileRequestBecomesACreateAndNothingElseChanges) {
  std::vector<char> m(sizeof(fuse_in_header) + sizeof(fuse_create_in) + 2, 0);
  fuse_in_header h{};
  h.len = static_cast<uint32_t>(m.size());
  h.opcode = 51;  // FUSE_TMPFILE
  h.unique = 77;
  h.nodeid = 5;
  std::memcpy(m.data(), &h, sizeof(h));
  m[m.size() - 2] = '/';
  const std::vector<char> before = m;
  ASSERT_TRUE(TmpfileAsCreate(m.data(), m.size()));
  fuse_in_header after;
  std::memcpy(&after, m.data(), sizeof(after));
  EXPECT_EQ(after.opcode, static_cast<uint32_t>(FUSE_CREATE));
  EXPECT_EQ(after.unique, 77u);
  EXPECT_EQ(after.nodeid, 5u);
  EXPECT_TRUE(std::equal(m.begin() + sizeof(h), m.end(), before.begin() + sizeof(h)));

  // Anything else is left alone, a short buffer too.
  h.opcode = FUSE_CREATE;
  std::memcpy(m.data(), &h, sizeof(h));
  EXPECT_FALSE(TmpfileAsCreate(m.data(), m.size()));
  h.opcode = 51;
  std::memcpy(m.data(), &h, sizeof(h));
  EXPECT_FALSE(TmpfileAsCreate(m.data(), sizeof(h) - 1));
}

}  // namespace
}  // namespace overtier
