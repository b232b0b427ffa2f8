#include "migrate/migration_state.h"

#include <optional>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace overtier {
namespace {

using OptRecord = std::optional<MigrationRecord>;

Bfid TestBfid(uint8_t n) {
  Bfid b;
  b.bytes[0] = 0xb0;
  b.bytes[15] = n;
  return b;
}

constexpr uint64_t kGen = 77;
constexpr uint64_t kSize = 1 << 20;

ArchiveInfo Info(uint64_t size = kSize) {
  ArchiveInfo i;
  i.bfid = TestBfid(1);
  i.size = size;
  i.copies = 2;
  i.copies_needed = 2;
  i.atime_ns = 111;
  i.mtime_ns = 222;
  i.now_ns = 333;
  return i;
}

ReleaseCheck Check(uint64_t keep, uint64_t size = kSize) {
  ReleaseCheck c;
  c.generation = kGen;
  c.file_size = size;
  c.valid_copies = 2;
  c.copies_needed = 2;
  c.keep = keep;
  return c;
}

// Every record a transition hands out must be storable.
void ExpectStorable(const Transition& t) {
  if (t.record) {
    EXPECT_TRUE(CheckRecord(*t.record).ok()) << CheckRecord(*t.record).ToString();
    EXPECT_NE(t.record->flags, 0u) << "a record without flags must be deleted instead";
  }
}

OptRecord Archived(uint64_t size = kSize) {
  Transition t;
  EXPECT_TRUE(BeginArchive(std::nullopt, kGen, kSize, &t).ok());
  Transition u;
  EXPECT_TRUE(FinishArchive(t.record, Info(size), &u).ok());
  return u.record;
}

OptRecord Released(uint64_t keep, uint64_t size = kSize) {
  Transition t;
  Status s = Release(Archived(size), Check(keep, size), &t);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return t.record;
}

TEST(MigrationStateTest, ArchiveLifecycle) {
  EXPECT_EQ(StateOf(std::nullopt), MigState::kResident);
  EXPECT_EQ(StateString(std::nullopt, 10), "resident");

  Transition begin;
  ASSERT_TRUE(BeginArchive(std::nullopt, kGen, kSize, &begin).ok());
  ExpectStorable(begin);
  ASSERT_TRUE(begin.record);
  EXPECT_EQ(begin.record->flags, kMigArchiveInProgress);
  EXPECT_EQ(begin.record->generation, kGen);
  EXPECT_EQ(StateOf(begin.record), MigState::kResident);
  EXPECT_EQ(StateString(begin.record, kSize), "resident archiving");

  // Only one archiver.
  Transition again;
  EXPECT_EQ(BeginArchive(begin.record, kGen, kSize, &again).err(), EBUSY);

  Transition done;
  ASSERT_TRUE(FinishArchive(begin.record, Info(), &done).ok());
  ExpectStorable(done);
  EXPECT_EQ(StateOf(done.record), MigState::kArchived);
  EXPECT_EQ(done.record->flags, kMigArchived);
  EXPECT_EQ(done.record->bfid, TestBfid(1));
  EXPECT_EQ(done.record->archive_size, kSize);
  EXPECT_EQ(done.record->atime_ns, 111);
  EXPECT_EQ(done.record->mtime_ns, 222);
  EXPECT_EQ(done.record->archive_time_ns, 333);
  EXPECT_EQ(done.record->residency, ResidencyKind::kBarrier);
  EXPECT_EQ(done.record->barrier, kSize);
  EXPECT_TRUE(done.freed.IsZero());
  EXPECT_EQ(StateString(done.record, kSize), "archived size=1048576");
  EXPECT_EQ(MigStateFlag(StateOf(done.record)), 'a');

  EXPECT_EQ(BeginArchive(done.record, kGen, kSize, &again).err(), EALREADY);
}

TEST(MigrationStateTest, FinishArchiveRefusals) {
  Transition begin, t;
  ASSERT_TRUE(BeginArchive(std::nullopt, kGen, kSize, &begin).ok());
  ArchiveInfo one = Info();
  one.copies = 1;
  Status s = FinishArchive(begin.record, one, &t);
  EXPECT_EQ(s.err(), EIO);
  EXPECT_NE(s.message().find("1 copies, 2 needed"), std::string::npos) << s.ToString();
  EXPECT_EQ(FinishArchive(std::nullopt, Info(), &t).err(), ESTALE);

  // A write during the archive abandons it; the archiver's finish fails.
  Transition w;
  ASSERT_TRUE(RecordWrite(begin.record, kSize, 0, 10, &w).ok());
  EXPECT_FALSE(w.record) << "no flags left: the row goes";
  EXPECT_EQ(FinishArchive(w.record, Info(), &t).err(), ESTALE);

  // Same for a truncate.
  ASSERT_TRUE(RecordTruncate(begin.record, kSize, 5, &w).ok());
  EXPECT_FALSE(w.record);

  // Abort.
  ASSERT_TRUE(AbortArchive(begin.record, &t).ok());
  EXPECT_FALSE(t.record);
  EXPECT_EQ(AbortArchive(std::nullopt, &t).err(), EINVAL);
}

TEST(MigrationStateTest, ReleaseKeepsPrefixAndNeedsAValidArchive) {
  OptRecord a = Archived();
  Transition t;
  ASSERT_TRUE(Release(a, Check(4096), &t).ok());
  ExpectStorable(t);
  EXPECT_EQ(StateOf(t.record), MigState::kReleased);
  EXPECT_EQ(t.record->flags, kMigArchived | kMigReleased);
  EXPECT_EQ(t.record->barrier, 4096u);
  EXPECT_EQ(StateString(t.record, kSize), "released barrier=4096 size=1048576");
  EXPECT_EQ(MigStateFlag(StateOf(t.record)), 'A');

  // Releasing more of a released file narrows; asking to keep more keeps
  // what is resident (a release never restores).
  Transition t2;
  ASSERT_TRUE(Release(t.record, Check(100), &t2).ok());
  EXPECT_EQ(t2.record->barrier, 100u);
  ASSERT_TRUE(Release(t2.record, Check(8192), &t2).ok());
  EXPECT_EQ(t2.record->barrier, 100u);

  // Keeping everything leaves the file archived, record unchanged.
  ASSERT_TRUE(Release(a, Check(kSize), &t2).ok());
  EXPECT_EQ(t2.record, a);

  // Refusals.
  EXPECT_EQ(Release(std::nullopt, Check(0), &t2).err(), ENODATA);
  ReleaseCheck c = Check(0);
  c.valid_copies = 1;
  Status s = Release(a, c, &t2);
  EXPECT_EQ(s.err(), ENODATA);
  EXPECT_NE(s.message().find("1 valid copies, release needs 2"), std::string::npos);
  c = Check(0);
  c.generation = kGen + 1;
  EXPECT_EQ(Release(a, c, &t2).err(), ESTALE);
  c = Check(0, kSize + 1);
  EXPECT_EQ(Release(a, c, &t2).err(), ESTALE);
  Transition w;
  ASSERT_TRUE(RecordWrite(t.record, kSize, 10000, 10, &w).ok());  // dirty
  EXPECT_EQ(Release(w.record, Check(0), &t2).err(), ENODATA);
  Transition r;
  ASSERT_TRUE(BeginRestore(t.record, kSize, &r).ok());
  EXPECT_EQ(Release(r.record, Check(0), &t2).err(), EBUSY);
  // Archiving is refused while data is non-resident.
  EXPECT_EQ(BeginArchive(t.record, kGen, kSize, &t2).err(), EALREADY);
  EXPECT_EQ(BeginArchive(w.record, kGen, kSize, &t2).err(), EBUSY);
}

TEST(MigrationStateTest, WriteToArchivedFileDropsTheArchive) {
  OptRecord a = Archived();
  Transition t;
  ASSERT_TRUE(RecordWrite(a, kSize, 5, 5, &t).ok());
  EXPECT_FALSE(t.record);
  EXPECT_EQ(t.freed, TestBfid(1));
  // A truncate to the same size changes no byte: still archived.
  ASSERT_TRUE(RecordTruncate(a, kSize, kSize, &t).ok());
  EXPECT_EQ(t.record, a);
  EXPECT_TRUE(t.freed.IsZero());
  ASSERT_TRUE(RecordTruncate(a, kSize, 10, &t).ok());
  EXPECT_FALSE(t.record);
  EXPECT_EQ(t.freed, TestBfid(1));
  // Writing nothing changes nothing.
  ASSERT_TRUE(RecordWrite(a, kSize, 5, 0, &t).ok());
  EXPECT_EQ(t.record, a);
}

TEST(MigrationStateTest, WriteToReleasedFileMakesItDirtyUntilNothingDependsOnTheArchive) {
  OptRecord rel = Released(100);
  Transition t;
  ASSERT_TRUE(RecordWrite(rel, kSize, 1000, 100, &t).ok());
  ExpectStorable(t);
  EXPECT_EQ(StateOf(t.record), MigState::kDirty);
  EXPECT_EQ(t.record->flags, kMigDirty | kMigReleased);
  EXPECT_EQ(t.record->bfid, TestBfid(1)) << "the archive is still the source of [100, 1000)";
  EXPECT_TRUE(t.freed.IsZero());
  EXPECT_EQ(t.record->residency, ResidencyKind::kRanges);
  EXPECT_EQ(StateString(t.record, kSize), "dirty resident=[0,100) [1000,1100) size=1048576");
  EXPECT_EQ(MigStateFlag(StateOf(t.record)), '-');

  // A truncate that shrinks restores nothing past the new size: cut to 50,
  // every byte that exists is resident, the archive is freed.
  Transition cut;
  ASSERT_TRUE(RecordTruncate(t.record, kSize, 50, &cut).ok());
  EXPECT_FALSE(cut.record);
  EXPECT_EQ(cut.freed, TestBfid(1));

  // Truncating to 500 keeps [100, 500) depending on the archive.
  ASSERT_TRUE(RecordTruncate(t.record, kSize, 500, &cut).ok());
  EXPECT_EQ(StateString(cut.record, 500), "dirty barrier=100 size=500");
  // Then growing: the new tail is the user's.
  Transition grow;
  ASSERT_TRUE(RecordTruncate(cut.record, 500, 5000, &grow).ok());
  EXPECT_EQ(StateString(grow.record, 5000), "dirty resident=[0,100) [500,5000) size=5000");
  // Overwriting the last non-resident bytes frees the archive.
  ASSERT_TRUE(RecordWrite(grow.record, 5000, 100, 400, &t).ok());
  EXPECT_FALSE(t.record);
  EXPECT_EQ(t.freed, TestBfid(1));
}

TEST(MigrationStateTest, AdoptMakesAReleasedOnDemandFileOfSharedContent) {
  AdoptInfo a;
  a.bfid = TestBfid(9);
  a.size = kSize;
  a.generation = kGen;
  a.atime_ns = 5;
  a.mtime_ns = 6;
  a.now_ns = 7;
  Transition t;
  ASSERT_TRUE(Adopt(std::nullopt, a, &t).ok());
  ExpectStorable(t);
  EXPECT_EQ(StateOf(t.record), MigState::kReleased);
  EXPECT_EQ(t.record->flags, kMigArchived | kMigReleased | kMigOnDemand);
  EXPECT_EQ(StateString(t.record, kSize), "released barrier=0 size=1048576");
  EXPECT_EQ(t.record->bfid, TestBfid(9));
  EXPECT_EQ(t.record->mtime_ns, 6);
  EXPECT_TRUE(t.freed.IsZero());

  // Appending one byte: dirty, the image still the source of the rest.
  Transition w;
  ASSERT_TRUE(RecordWrite(t.record, kSize, kSize, 1, &w).ok());
  ExpectStorable(w);
  EXPECT_EQ(StateOf(w.record), MigState::kDirty);
  EXPECT_TRUE(w.record->flags & kMigOnDemand) << "still restored on demand only";
  EXPECT_EQ(StateString(w.record, kSize + 1), "dirty resident=[1048576,1048577) size=1048577");

  // A restore that brings everything back leaves a resident file.
  Transition b, p, f;
  ASSERT_TRUE(BeginRestore(w.record, kSize + 1, &b).ok());
  ASSERT_TRUE(RestoreProgress(b.record, kSize + 1, 0, kSize, &p).ok());
  ASSERT_TRUE(FinishRestore(p.record, kSize + 1, 8, &f).ok());
  EXPECT_FALSE(f.record);

  // Adopting again (a crash interrupted the first copy-up) replaces the
  // record; empty content or no bfid is refused.
  Transition again;
  ASSERT_TRUE(Adopt(w.record, a, &again).ok());
  EXPECT_EQ(again.record, t.record);
  a.size = 0;
  EXPECT_EQ(Adopt(std::nullopt, a, &again).err(), EINVAL);
  a.size = kSize;
  a.bfid = Bfid();
  EXPECT_EQ(Adopt(std::nullopt, a, &again).err(), EINVAL);
}

TEST(MigrationStateTest, RestoreLifecycle) {
  OptRecord rel = Released(4096);
  Transition t;
  EXPECT_EQ(RestoreProgress(rel, kSize, 4096, 10, &t).err(), EINVAL);
  EXPECT_EQ(FinishRestore(rel, kSize, 1, &t).err(), EINVAL);
  ASSERT_TRUE(BeginRestore(rel, kSize, &t).ok());
  ExpectStorable(t);
  EXPECT_EQ(StateString(t.record, kSize), "released barrier=4096 size=1048576 restoring");
  Transition again;
  EXPECT_EQ(BeginRestore(t.record, kSize, &again).err(), EBUSY);
  // Archive refused while restoring (data non-resident).
  EXPECT_EQ(BeginArchive(t.record, kGen, kSize, &again).err(), EALREADY);

  // Range first: the end of the file, then the barrier moves.
  Transition p;
  ASSERT_TRUE(RestoreProgress(t.record, kSize, kSize - 65536, 65536, &p).ok());
  ExpectStorable(p);
  EXPECT_EQ(p.record->residency, ResidencyKind::kRanges);
  ASSERT_TRUE(RestoreProgress(p.record, kSize, 4096, 65536, &p).ok());
  EXPECT_EQ(StateString(p.record, kSize),
            "released resident=[0,69632) [983040,1048576) size=1048576 restoring");

  // Stopping early: still released, a later access restores the rest.
  Transition stop;
  ASSERT_TRUE(FinishRestore(p.record, kSize, 999, &stop).ok());
  EXPECT_EQ(StateOf(stop.record), MigState::kReleased);
  EXPECT_EQ(stop.record->flags, kMigArchived | kMigReleased);
  EXPECT_EQ(stop.record->restore_time_ns, 999);

  // To the end: archived again (dual state), the barrier is the size.
  ASSERT_TRUE(RestoreProgress(p.record, kSize, 0, kSize, &p).ok());
  Transition fin;
  ASSERT_TRUE(FinishRestore(p.record, kSize, 1000, &fin).ok());
  ExpectStorable(fin);
  EXPECT_EQ(StateOf(fin.record), MigState::kArchived);
  EXPECT_EQ(fin.record->flags, kMigArchived);
  EXPECT_EQ(fin.record->barrier, kSize);
  EXPECT_EQ(fin.record->bfid, TestBfid(1));
  EXPECT_TRUE(fin.freed.IsZero());
  EXPECT_EQ(BeginRestore(fin.record, kSize, &again).err(), EALREADY);
  EXPECT_EQ(BeginRestore(std::nullopt, kSize, &again).err(), EALREADY);
}

TEST(MigrationStateTest, RestoreOfDirtyFileEndsResident) {
  Transition w, r, p, fin;
  ASSERT_TRUE(RecordWrite(Released(0), kSize, 0, 10, &w).ok());
  ASSERT_TRUE(BeginRestore(w.record, kSize, &r).ok());
  // A user write during the restore keeps the restore flag.
  Transition w2;
  ASSERT_TRUE(RecordWrite(r.record, kSize, 20, 10, &w2).ok());
  EXPECT_NE(w2.record->flags & kMigRestoreInProgress, 0u);
  ASSERT_TRUE(RestoreProgress(w2.record, kSize, 0, kSize, &p).ok());
  ASSERT_TRUE(FinishRestore(p.record, kSize, 5, &fin).ok());
  EXPECT_FALSE(fin.record);
  EXPECT_EQ(fin.freed, TestBfid(1));

  // A user write that makes the file fully resident during the restore:
  // the archive is freed, the restore flag stays until the restorer ends.
  Transition all;
  ASSERT_TRUE(RecordWrite(r.record, kSize, 0, kSize, &all).ok());
  ExpectStorable(all);
  ASSERT_TRUE(all.record);
  EXPECT_EQ(all.record->flags, kMigRestoreInProgress);
  EXPECT_EQ(all.freed, TestBfid(1));
  EXPECT_EQ(StateOf(all.record), MigState::kResident);
  ASSERT_TRUE(FinishRestore(all.record, kSize, 5, &fin).ok());
  EXPECT_FALSE(fin.record);
  EXPECT_TRUE(fin.freed.IsZero()) << "freed once only";
}

TEST(MigrationStateTest, LostGenerationAndUnlink) {
  Transition t;
  ASSERT_TRUE(MarkLost(Released(10), kSize, &t).ok());
  ExpectStorable(t);
  EXPECT_EQ(StateOf(t.record), MigState::kLost);
  EXPECT_EQ(MigStateFlag(MigState::kLost), '!');
  EXPECT_EQ(StateString(t.record, kSize), "lost barrier=10 size=1048576");
  Transition x;
  EXPECT_EQ(BeginRestore(t.record, kSize, &x).err(), EIO);
  EXPECT_EQ(BeginArchive(t.record, kGen, kSize, &x).err(), EIO);
  EXPECT_EQ(Release(t.record, Check(0), &x).err(), ENODATA);
  // Overwriting the lost bytes makes the file whole again.
  ASSERT_TRUE(RecordTruncate(t.record, kSize, 10, &x).ok());
  EXPECT_FALSE(x.record);

  // A fully resident file only loses its archive.
  ASSERT_TRUE(MarkLost(Archived(), kSize, &t).ok());
  EXPECT_FALSE(t.record);
  EXPECT_EQ(t.freed, TestBfid(1));

  bool invalidated = true;
  OptRecord rel = Released(10);
  CheckGeneration(rel, kGen, &t, &invalidated);
  EXPECT_FALSE(invalidated);
  EXPECT_EQ(t.record, rel);
  CheckGeneration(rel, kGen + 1, &t, &invalidated);
  EXPECT_TRUE(invalidated);
  EXPECT_FALSE(t.record);
  EXPECT_EQ(t.freed, TestBfid(1));
  CheckGeneration(std::nullopt, 5, &t, &invalidated);
  EXPECT_FALSE(invalidated);

  Unlink(rel, &t);
  EXPECT_FALSE(t.record);
  EXPECT_EQ(t.freed, TestBfid(1));
}

// Random sequences of operations: whatever is accepted yields a storable
// record, the bfid is freed at most once, and a refusal changes nothing.
TEST(MigrationStateTest, RandomSequencesKeepInvariants) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 2000; round++) {
    OptRecord rec;
    uint64_t size = 1 + rng() % 1000;
    int freed = 0;
    uint8_t next_bfid = 1;
    std::string trace;
    for (int step = 0; step < 30; step++) {
      Transition t;
      Status s;
      uint64_t a = rng() % (size + 50), b = rng() % 200;
      uint64_t new_size = size;
      switch (rng() % 9) {
        case 0:
          s = BeginArchive(rec, kGen, size, &t);
          trace += " begin-archive";
          break;
        case 1: {
          ArchiveInfo i = Info(size);
          i.bfid = TestBfid(next_bfid);
          s = FinishArchive(rec, i, &t);
          if (s.ok()) next_bfid++, freed = 0;
          trace += " finish-archive";
          break;
        }
        case 2:
          s = Release(rec, Check(a, size), &t);
          trace += " release(" + std::to_string(a) + ")";
          break;
        case 3:
          s = RecordWrite(rec, size, a, b, &t);
          if (b > 0 && a + b > size) new_size = a + b;
          trace += " write(" + std::to_string(a) + "," + std::to_string(b) + ")";
          break;
        case 4:
          s = RecordTruncate(rec, size, a, &t);
          new_size = a;
          trace += " truncate(" + std::to_string(a) + ")";
          break;
        case 5:
          s = BeginRestore(rec, size, &t);
          trace += " begin-restore";
          break;
        case 6:
          s = RestoreProgress(rec, size, a, b, &t);
          trace += " progress";
          break;
        case 7:
          s = FinishRestore(rec, size, 1, &t);
          trace += " finish-restore";
          break;
        case 8:
          s = AbortArchive(rec, &t);
          trace += " abort-archive";
          break;
      }
      if (!s.ok()) {
        EXPECT_FALSE(s.message().empty()) << trace;
        continue;  // refused: the record stays as it was
      }
      ASSERT_NO_FATAL_FAILURE(ExpectStorable(t)) << trace;
      if (!t.freed.IsZero()) {
        freed++;
        ASSERT_EQ(freed, 1) << "archive freed twice:" << trace;
        ASSERT_TRUE(rec && rec->bfid == t.freed) << trace;
        ASSERT_TRUE(!t.record || t.record->bfid.IsZero()) << "freed but still referenced" << trace;
      }
      rec = t.record;
      size = new_size;
      // The state's promises.
      MigState st = StateOf(rec);
      ResidencyMap m;
      if (rec) {
        ASSERT_TRUE(ResidencyMap::FromRecord(*rec, size, &m).ok()) << trace;
      }
      if (st == MigState::kArchived) {
        ASSERT_TRUE(m.fully_resident()) << trace;
        ASSERT_EQ(rec->archive_size, size) << trace;
      }
      if (st == MigState::kReleased || st == MigState::kDirty) {
        ASSERT_FALSE(rec->bfid.IsZero()) << trace;
      }
      if (st == MigState::kResident && rec) {
        ASSERT_TRUE(m.fully_resident()) << trace;
        ASSERT_TRUE(rec->bfid.IsZero()) << trace;
      }
    }
  }
}

}  // namespace
}  // namespace overtier
