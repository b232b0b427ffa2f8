// Fuzz target: the policy rules file (migrate/policy.h) and the size,
// duration and percentage words it shares with the command line.
//
// Rules files are written by hand and read by a daemon that must not go
// down over a typo. Properties: a file that does not parse says on which
// line; one that does has watermarks in order and rules on real lines; a
// size or duration that parses survives being written out and read again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "migrate/byte_size.h"
#include "migrate/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  overtier::PolicyRules rules;
  overtier::Status s = overtier::ParsePolicyRules(text, &rules);
  int lines = 1;
  for (char c : text) lines += c == '\n';
  if (!s.ok()) {
    FUZZ_CHECK(s.err() == EINVAL, "a bad rules file is EINVAL");
    FUZZ_CHECK(s.message().starts_with("line "), "a rules file error names its line");
  } else {
    for (const overtier::PolicyRule& r : rules.rules)
      FUZZ_CHECK(r.line >= 1 && r.line <= lines, "a rule comes from a line of the file");
    if (rules.has_watermarks()) {
      FUZZ_CHECK(rules.low_pct.has_value() && *rules.low_pct < *rules.high_pct,
                 "the low watermark is below the high one");
      FUZZ_CHECK(*rules.low_pct >= 0 && *rules.high_pct <= 100, "watermarks are percentages");
    }
  }

  // The words alone (the first line of the input).
  const std::string_view word = text.substr(0, text.find('\n'));
  uint64_t bytes;
  if (overtier::ParseByteSize(word, &bytes)) {
    uint64_t again = 0;
    FUZZ_CHECK(overtier::ParseByteSize(std::to_string(bytes), &again) && again == bytes,
               "a size reads back from its decimal form");
  }
  int64_t ns;
  if (overtier::ParseDuration(word, &ns)) {
    FUZZ_CHECK(ns >= 0 && ns % 1000000000 == 0, "a duration is whole seconds");
    int64_t again = 0;
    FUZZ_CHECK(
        overtier::ParseDuration(std::to_string(ns / 1000000000) + "s", &again) && again == ns,
        "a duration reads back in seconds");
  }
  double pct;
  if (overtier::ParsePercent(word, &pct)) FUZZ_CHECK(pct >= 0 && pct <= 100, "a percentage");
  return 0;
}
