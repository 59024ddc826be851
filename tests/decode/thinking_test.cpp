// Thinking control: recognising thinking templates, splitting thinking from
// the answer as text streams in, budget forcing, and early-exit probes that
// either leave the answer exactly as without them or end it exactly as a
// budget cut at the same place would. The references are independent runs:
// plain generation without thinking control, and a budget cut.
#include <gtest/gtest.h>

#include <string>

#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/knowledge.h"
#include "frugal/scheduler.h"
#include "frugal/thinking.h"
#include "support/greedy_options.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::greedy;

// Qwen3's template ends like this (the rest of it is ChatML).
constexpr std::string_view kQwen3Tail =
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is defined and "
    "enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}";
// DeepSeek-R1 distills' January template opens the block itself.
constexpr std::string_view kR1Tail =
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}";

TEST(ThinkingFormat, RecognisesThinkingTemplates) {
  const auto qwen3 = detect_thinking_format(kQwen3Tail);
  ASSERT_TRUE(qwen3);
  EXPECT_FALSE(qwen3->opened_by_template);
  const auto r1 = detect_thinking_format(kR1Tail);
  ASSERT_TRUE(r1);
  EXPECT_TRUE(r1->opened_by_template);
  EXPECT_FALSE(detect_thinking_format("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}"));
}

TEST(ThinkingFormat, ParsesEarlyExitAndEffort) {
  EXPECT_FALSE(parse_early_exit("off").enabled());
  const EarlyExit mean = parse_early_exit("confidence:0.9");
  EXPECT_DOUBLE_EQ(mean.threshold, 0.9);
  EXPECT_EQ(mean.measure, EarlyExit::Measure::Mean);
  const EarlyExit min = parse_early_exit("min-confidence:0.5,every:32,max:8");
  EXPECT_EQ(min.measure, EarlyExit::Measure::Min);
  EXPECT_EQ(min.every, 32);
  EXPECT_EQ(min.max_answer_tokens, 8);
  EXPECT_EQ(early_exit_name(min), "min-confidence:0.5,every:32,max:8");
  for (const char* bad : {"confidence", "confidence:2", "sure:0.9", "confidence:0.9,every:x", "confidence:0.9,max:0"}) {
    EXPECT_THROW(parse_early_exit(bad), Error) << bad;
  }
  EXPECT_EQ(thinking_for_effort("none").enabled, false);
  EXPECT_EQ(thinking_for_effort("low").budget, 256);
  EXPECT_EQ(thinking_for_effort("high").budget, -1);
  EXPECT_THROW(thinking_for_effort("max"), Error);
}

// The splitter against the whole text split by hand, fed in every way of
// cutting it in two and one character at a time.
TEST(ThinkingSplitter, SplitsAnyWayTheTextArrives) {
  struct Case {
    std::string text, thinking, answer;
    bool starts_inside = false;
  };
  const Case cases[] = {
      {"<think>\nFirst.\n\nSecond.\n</think>\n\nMarketby", "First.\n\nSecond.", "Marketby"},
      {"  Marketby is the answer", "", "Marketby is the answer"},
      {"Counting.\n</think>\n\n19", "Counting.", "19", true},
      {"<think>\n\n</think>\n\n42", "", "42"},
      {"<think>\nstill thinking when cut\n", "still thinking when cut", ""},
      {"<thin", "", "<thin"},
      {"<think>a < b and </thinker> </think> x </think> y", "a < b and </thinker>", "x </think> y"},
  };
  for (const Case& c : cases) {
    for (size_t cut = 0; cut <= c.text.size() + 1; ++cut) {
      ThinkingSplitter splitter("<think>", "</think>", c.starts_inside);
      std::string thinking, answer;
      auto take = [&](const ThinkingSplitter::Pieces& p) {
        thinking += p.thinking;
        answer += p.answer;
      };
      if (cut <= c.text.size()) {
        take(splitter.push(c.text.substr(0, cut)));
        take(splitter.push(c.text.substr(cut)));
      } else {
        for (char ch : c.text) take(splitter.push(std::string(1, ch)));
      }
      take(splitter.flush());
      EXPECT_EQ(thinking, c.thinking) << c.text << " cut at " << cut;
      EXPECT_EQ(answer, c.answer) << c.text << " cut at " << cut;
    }
  }
}

TEST(ThinkingSplitter, KnowsWhereTheThinkingEnds) {
  ThinkingSplitter splitter("<think>", "</think>", false);
  splitter.push("<think>\nOne.");
  EXPECT_TRUE(splitter.thinking());
  EXPECT_FALSE(splitter.ends_with_newline());
  splitter.push("\n");
  EXPECT_TRUE(splitter.ends_with_newline());
  EXPECT_FALSE(splitter.ends_with_blank_line());
  splitter.push(" \n");
  EXPECT_TRUE(splitter.ends_with_blank_line());
  splitter.push("Two.</think>");
  EXPECT_TRUE(splitter.answering());
}

// The demo model thinks in no markers, so its whole answer is taken as
// thinking when the block is opened by the prompt: it gives confident,
// short answers to probe, with a real tokenizer.
class Thinking : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(test::source_path("models/frugal-demo-qa-q8_0.gguf"), {.threads = 2});
    tokenizer_ = Tokenizer::from_gguf(model_->file());
    const PromptTemplate layout = plain_prompt_template();
    prompt_ = encode_header(*tokenizer_, layout, layout.default_system);
    const Document document{"1", "Harlow Clinic", "The Harlow Clinic is in Westbrook. Dr. Mira Osei directs it."};
    for (const auto& part : {encode_document(*tokenizer_, layout, document),
                             encode_question(*tokenizer_, layout, "Who directs the Harlow Clinic?")}) {
      prompt_.insert(prompt_.end(), part.begin(), part.end());
    }
  }

  GenerationOptions options(int32_t budget, std::string_view exit, int32_t max_tokens = 24) const {
    ThinkingSettings settings;
    settings.budget = budget;
    settings.exit = parse_early_exit(exit);
    GenerationOptions o = greedy(max_tokens);
    o.ignore_eos = exit == "off";  // a long thinking to cut; probes need the end token
    o.thinking = make_thinking_options(ThinkingFormat{.opened_by_template = true}, settings, *tokenizer_);
    return o;
  }
  GenerationResult alone(const GenerationOptions& o) const {
    KvCache cache(model_->config(), 512);
    return generate(*model_, *tokenizer_, cache, prompt_, o);
  }
  GenerationResult batched(const GenerationOptions& o) const {
    GenerationScheduler scheduler(*model_, *tokenizer_, {.parallel = 2, .context = 512});
    return scheduler.submit({prompt_, o}).get();
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<TokenId> prompt_;
};

TEST_F(Thinking, BudgetCutEndsTheThinkingAndNeverLeaksIt) {
  const GenerationResult full = alone(options(-1, "off"));
  EXPECT_TRUE(full.text.empty());  // never closed: all thinking
  EXPECT_FALSE(full.thinking.empty());
  const GenerationResult cut = alone(options(5, "off"));
  ASSERT_GT(cut.tokens.size(), 5u);
  EXPECT_TRUE(cut.thinking_cut);
  EXPECT_EQ(std::vector<TokenId>(cut.tokens.begin(), cut.tokens.begin() + 5),
            std::vector<TokenId>(full.tokens.begin(), full.tokens.begin() + 5));
  // What the 5 tokens say is the thinking, all of it; the answer after the
  // written close marker holds none of it and no marker.
  const std::string five = tokenizer_->decode(std::span(cut.tokens).first(5));
  const auto trimmed = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \n"));
    s.erase(s.find_last_not_of(" \n") + 1);
    return s;
  };
  EXPECT_EQ(cut.thinking, trimmed(five));
  // The whole text, decoded on its own: thinking, the close marker frugal
  // wrote, then exactly the answer.
  const std::string whole = tokenizer_->decode(cut.tokens);
  const size_t close = whole.find("</think>");
  ASSERT_NE(close, std::string::npos);
  EXPECT_EQ(trimmed(whole.substr(0, close)), cut.thinking);
  EXPECT_EQ(trimmed(whole.substr(close + 8)), cut.text);
  EXPECT_FALSE(cut.text.empty());
  EXPECT_GE(cut.thinking_tokens, 5u);
  // The scheduler writes the same close and gives the same answer.
  const GenerationResult served = batched(options(5, "off"));
  EXPECT_EQ(served.tokens, cut.tokens);
  EXPECT_EQ(served.thinking, cut.thinking);
  EXPECT_EQ(served.text, cut.text);
}

TEST_F(Thinking, ProbesThatAreNotKeptLeaveTheAnswerAsItWas) {
  GenerationOptions plain = options(-1, "off");
  plain.ignore_eos = false;
  const GenerationResult reference = alone(plain);
  // Never confident enough (no probability is exactly 1): probes run and are dropped.
  const GenerationResult probed = alone(options(-1, "min-confidence:1,every:3"));
  EXPECT_GT(probed.probes, 0u);
  EXPECT_GT(probed.probe_tokens, probed.probes);
  EXPECT_FALSE(probed.early_exit);
  EXPECT_EQ(probed.tokens, reference.tokens);
  EXPECT_EQ(probed.thinking, reference.thinking);
  const GenerationResult served = batched(options(-1, "min-confidence:1,every:3"));
  EXPECT_EQ(served.tokens, reference.tokens);
  EXPECT_EQ(served.probes, probed.probes);
}

TEST_F(Thinking, AKeptProbeEndsTheAnswerAsABudgetCutThereWould) {
  // Probing after N thinking tokens with no bar to pass; where the probed
  // answer ends within 32 tokens it is kept.
  size_t kept = 0;
  for (int32_t n = 1; n <= 8; ++n) {
    const std::string exit = "confidence:0,every:" + std::to_string(n) + ",max:32";
    const GenerationResult exited = alone(options(-1, exit, 64));
    if (!exited.early_exit) continue;
    ++kept;
    EXPECT_EQ(exited.probes, 1u);
    GenerationOptions cut_options = options(n, "off", 64);
    cut_options.ignore_eos = false;
    const GenerationResult cut = alone(cut_options);
    EXPECT_EQ(exited.tokens, cut.tokens) << exit;
    EXPECT_EQ(exited.thinking, cut.thinking) << exit;
    EXPECT_EQ(exited.text, cut.text) << exit;
    EXPECT_EQ(exited.stop_reason, StopReason::EndOfGeneration) << exit;
    const GenerationResult served = batched(options(-1, exit, 64));
    EXPECT_EQ(served.tokens, exited.tokens) << exit;
    EXPECT_EQ(served.text, exited.text) << exit;
    EXPECT_TRUE(served.early_exit) << exit;
  }
  EXPECT_GT(kept, 0u) << "no probe ended within 32 tokens";
}

TEST_F(Thinking, SettingsAModelCannotHonourAreRefused) {
  ThinkingSettings on;
  on.enabled = true;
  EXPECT_THROW(make_thinking_options(std::nullopt, on, *tokenizer_), Error);
  ThinkingSettings off;
  off.enabled = false;
  EXPECT_FALSE(make_thinking_options(std::nullopt, off, *tokenizer_).parse);
  // Thinking off writes the empty block after the prompt.
  const ThinkingOptions o = make_thinking_options(ThinkingFormat{}, off, *tokenizer_);
  EXPECT_EQ(tokenizer_->decode(o.prompt_suffix), tokenizer_->decode(tokenizer_->encode("<think>\n\n</think>\n\n",
                                                                                          false, true)));
  GenerationOptions shifting = options(-1, "confidence:0.9");
  shifting.context_shift = true;
  KvCache cache(model_->config(), 512);
  EXPECT_THROW(generate(*model_, *tokenizer_, cache, prompt_, shifting), Error);
}

}  // namespace
}  // namespace frugal
