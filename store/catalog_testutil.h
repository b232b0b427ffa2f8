// Test helper: what a store's catalog holds, read with nothing mounted on
// the store (a read-only open sees what the last writer committed).
#ifndef OVERTIER_STORE_CATALOG_TESTUTIL_H_
#define OVERTIER_STORE_CATALOG_TESTUTIL_H_

#include <memory>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

#include "store/store.h"

namespace overtier {

// How many migration records the store at `store_dir` holds; -1 (and a
// test failure) when it cannot be read.
inline int CountMigrationRecords(const std::string& store_dir) {
  std::unique_ptr<Store> st;
  StoreOpenOptions so;
  so.read_only = true;
  Status s = Store::Open(store_dir, so, &st);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return -1;
  int records = 0;
  s = st->catalog()->ScanMigration("", [&](std::string_view, const MigrationRecord&) {
    records++;
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return s.ok() ? records : -1;
}

}  // namespace overtier

#endif  // OVERTIER_STORE_CATALOG_TESTUTIL_H_
