#include <gtest/gtest.h>

#include "frugal/generation_text.h"

namespace frugal {
namespace {

TEST(StopStringMatcherTest, PassesTextThroughWithoutStopStrings) {
  StopStringMatcher matcher({});
  auto output = matcher.push("Hello");
  EXPECT_EQ(output.text, "Hello");
  EXPECT_FALSE(output.stopped);
  EXPECT_EQ(matcher.flush(), "");
}

TEST(StopStringMatcherTest, HoldsBackAPossibleStartAndStopsAcrossPieces) {
  StopStringMatcher matcher({"\nUser:"});
  EXPECT_EQ(matcher.push("Hello").text, "Hello");
  auto output = matcher.push(" world\nUs");
  EXPECT_EQ(output.text, " world");  // "\nUs" may begin "\nUser:"
  EXPECT_FALSE(output.stopped);
  output = matcher.push("er: more");
  EXPECT_EQ(output.text, "");
  EXPECT_TRUE(output.stopped);
  EXPECT_TRUE(matcher.stopped());
}

TEST(StopStringMatcherTest, ReleasesHeldTextWhenItTurnsOutHarmless) {
  StopStringMatcher matcher({"\nUser:"});
  EXPECT_EQ(matcher.push("a\nUs").text, "a");
  auto output = matcher.push("ually");
  EXPECT_EQ(output.text, "\nUsually");
  EXPECT_FALSE(output.stopped);
}

TEST(StopStringMatcherTest, ReleasesTextBeforeTheStopStringInOnePiece) {
  StopStringMatcher matcher({"STOP"});
  auto output = matcher.push("abcSTOPdef");
  EXPECT_EQ(output.text, "abc");
  EXPECT_TRUE(output.stopped);
  output = matcher.push("more");
  EXPECT_EQ(output.text, "");
  EXPECT_TRUE(output.stopped);
  EXPECT_EQ(matcher.flush(), "");
}

TEST(StopStringMatcherTest, EarliestOfSeveralStopStringsWins) {
  StopStringMatcher matcher({"world", "lo"});
  auto output = matcher.push("hello world");
  EXPECT_EQ(output.text, "hel");
  EXPECT_TRUE(output.stopped);
}

TEST(StopStringMatcherTest, OverlappingPrefixes) {
  StopStringMatcher matcher({"aab"});
  EXPECT_EQ(matcher.push("aaa").text, "a");  // "aa" could still become "aab"
  auto output = matcher.push("b");
  EXPECT_EQ(output.text, "");
  EXPECT_TRUE(output.stopped);
}

TEST(StopStringMatcherTest, FlushReleasesHeldTextAtTheEnd) {
  StopStringMatcher matcher({"</answer>"});
  EXPECT_EQ(matcher.push("42 </ans").text, "42 ");
  EXPECT_EQ(matcher.flush(), "</ans");
}

TEST(StopStringMatcherTest, IgnoresEmptyStopStrings) {
  StopStringMatcher matcher({"", "x"});
  EXPECT_EQ(matcher.stop_strings().size(), 1u);
  auto output = matcher.push("abc");
  EXPECT_EQ(output.text, "abc");
  EXPECT_FALSE(output.stopped);
}

TEST(StopStringMatcherTest, ByteAtATimeStreaming) {
  StopStringMatcher matcher({"<|end|>"});
  std::string text = "The answer is <|e 4<|end|> ignored";
  std::string printed;
  bool stopped = false;
  for (char c : text) {
    auto output = matcher.push(std::string_view(&c, 1));
    printed += output.text;
    if (output.stopped) {
      stopped = true;
      break;
    }
  }
  EXPECT_TRUE(stopped);
  EXPECT_EQ(printed, "The answer is <|e 4");
}

}  // namespace
}  // namespace frugal
