// Continuous batching against the plain generation loop: concurrent jobs in
// one batch give the answers each gives alone, prefixes are read once,
// cancelling and stopping end jobs cleanly and free their keys and values.
#include <gtest/gtest.h>

#include <thread>
#include <utility>

#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/knowledge.h"
#include "frugal/scheduler.h"
#include "support/greedy_options.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::greedy;

// The demo model: a trained model with confident answers, so batched and
// single passes (equal up to rounding) pick the same tokens.
class Scheduler : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(test::source_path("models/frugal-demo-qa-q8_0.gguf"), {.threads = 2});
    tokenizer_ = Tokenizer::from_gguf(model_->file());
    template_ = plain_prompt_template();
    documents_ = {{"1", "Harlow Clinic", "The Harlow Clinic is in Westbrook. Dr. Mira Osei directs the Harlow Clinic. "
                                        "It was founded in 1987. It opens at 8 am."},
                  {"2", "Brook School", "The Brook School is in Ashford. Its head teacher is Mr. Tom Adler. "
                                       "It has 340 pupils."},
                  {"3", "Dr. Mira Osei", "Dr. Mira Osei was born in Kingsbury. Dr. Mira Osei is 54 years old."}};
  }

  std::vector<TokenId> knowledge() const {
    std::vector<TokenId> tokens = encode_header(*tokenizer_, template_, template_.default_system);
    for (const auto& d : documents_) {
      const auto more = encode_document(*tokenizer_, template_, d);
      tokens.insert(tokens.end(), more.begin(), more.end());
    }
    return tokens;
  }
  std::vector<TokenId> prompt(const std::string& question) const {
    auto tokens = knowledge();
    const auto q = encode_question(*tokenizer_, template_, question);
    tokens.insert(tokens.end(), q.begin(), q.end());
    return tokens;
  }
  GenerationResult alone(const std::vector<TokenId>& tokens, const GenerationOptions& options) {
    KvCache cache(model_->config(), 1024);
    return generate(*model_, *tokenizer_, cache, tokens, options);
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  PromptTemplate template_;
  std::vector<Document> documents_;
};

const std::vector<std::string> kQuestions = {
    "Who directs the Harlow Clinic?", "Where is the Brook School?", "Where was Dr. Mira Osei born?",
    "When was the Harlow Clinic founded?", "How many pupils does the Brook School have?",
    "Who owns the Mill Road Bakery?"};

TEST_F(Scheduler, ConcurrentJobsAnswerAsEachAlone) {
  GenerationScheduler scheduler(*model_, *tokenizer_, {.parallel = 4, .context = 1024, .prompt_chunk = 64});
  std::vector<std::future<GenerationResult>> futures;
  std::vector<std::string> streamed(kQuestions.size());
  for (size_t i = 0; i < kQuestions.size(); ++i) {
    GenerationJob job{prompt(kQuestions[i]), greedy()};
    job.on_text = [&streamed, i](std::string_view text) {
      streamed[i] += text;
      return true;
    };
    futures.push_back(scheduler.submit(std::move(job)));
  }
  for (size_t i = 0; i < kQuestions.size(); ++i) {
    SCOPED_TRACE(kQuestions[i]);
    const GenerationResult batched = futures[i].get();
    const GenerationResult reference = alone(prompt(kQuestions[i]), greedy());
    EXPECT_EQ(batched.tokens, reference.tokens);
    EXPECT_EQ(batched.text, reference.text);
    EXPECT_EQ(streamed[i], batched.text);
    EXPECT_EQ(batched.stop_reason, StopReason::EndOfGeneration);
    EXPECT_EQ(batched.prompt_tokens, prompt(kQuestions[i]).size());
  }
  EXPECT_EQ(futures[0].valid(), false);
  // The first answer is the document's fact (the model works at all).
  EXPECT_EQ(alone(prompt(kQuestions[0]), greedy()).text, " Dr. Mira Osei");
  const SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.running, 0u);
  EXPECT_EQ(stats.waiting, 0u);
  // Six questions over one knowledge prefix: it was read once, or at most a
  // few times while the first reader was still at it, never six times.
  const size_t all_prompts = kQuestions.size() * knowledge().size();
  EXPECT_LT(stats.batched_tokens, all_prompts / 2) << stats.batched_tokens;
}

TEST_F(Scheduler, APinnedPrefixIsNotReadAgain) {
  const auto prefix = knowledge();
  KvCache rows(model_->config(), 1024);
  prefill(*model_, rows, prefix, 512);
  GenerationScheduler scheduler(*model_, *tokenizer_, {.parallel = 2, .context = 1024});
  EXPECT_EQ(scheduler.pin_prefix(prefix, rows), 0u);
  EXPECT_EQ(scheduler.pin_prefix(prefix, rows), prefix.size());  // all there already
  const auto tokens = prompt(kQuestions[2]);
  const GenerationResult result = scheduler.submit({tokens, greedy()}).get();
  EXPECT_EQ(result.tokens, alone(tokens, greedy()).tokens);
  const SchedulerStats stats = scheduler.stats();
  // The question's tokens and the answer's tokens but the last: no prefix.
  EXPECT_EQ(stats.batched_tokens, tokens.size() - prefix.size() + result.tokens.size() - 1);
  EXPECT_GE(stats.store.live_bytes, prefix.size() * model_->kv_layout().slot_bytes());
}

TEST_F(Scheduler, OneAtATimeGivesTheSameAnswers) {
  GenerationScheduler scheduler(*model_, *tokenizer_, {.parallel = 1, .context = 1024, .cache_bytes = 0});
  std::vector<std::future<GenerationResult>> futures;
  for (const auto& q : kQuestions) futures.push_back(scheduler.submit({prompt(q), greedy()}));
  for (size_t i = 0; i < kQuestions.size(); ++i) {
    EXPECT_EQ(futures[i].get().tokens, alone(prompt(kQuestions[i]), greedy()).tokens) << kQuestions[i];
  }
  // Nothing is kept once every job is over and no cache is allowed.
  const SchedulerStats stats = scheduler.stats();
  EXPECT_EQ(stats.store.live_bytes, 0u);
}

TEST_F(Scheduler, SeededSamplingRepeats) {
  GenerationScheduler scheduler(*model_, *tokenizer_, {.parallel = 3, .context = 1024});
  GenerationOptions options = greedy(12);
  options.sampling.temperature = 1.5f;
  options.sampling.seed = 7;
  const auto tokens = prompt("Tell me about the Brook School.");
  auto a = scheduler.submit({tokens, options});
  auto b = scheduler.submit({tokens, options});
  const auto first = a.get(), second = b.get();
  EXPECT_EQ(first.tokens, second.tokens);
  EXPECT_EQ(first.seed, 7u);
  EXPECT_EQ(first.tokens, alone(tokens, options).tokens);
}

TEST_F(Scheduler, StopStringsAndTokenBudgets) {
  GenerationScheduler scheduler(*model_, *tokenizer_, {.parallel = 2, .context = 1024});
  GenerationOptions options = greedy(16);
  options.stop_strings = {"Osei"};
  auto stopped = scheduler.submit({prompt(kQuestions[0]), options}).get();
  EXPECT_EQ(stopped.stop_reason, StopReason::StopString);
  EXPECT_EQ(stopped.text, " Dr. Mira ");
  auto short_answer = scheduler.submit({prompt(kQuestions[0]), greedy(2)}).get();
  EXPECT_EQ(short_answer.stop_reason, StopReason::MaxTokens);
  EXPECT_EQ(short_answer.tokens.size(), 2u);
  // A context that ends two tokens after the prompt: two answer tokens are
  // stored, a third is sampled from the last one's logits, as generate()
  // does with a KvCache of that size.
  const auto tokens = prompt(kQuestions[0]);
  const auto context = static_cast<int64_t>(tokens.size()) + 2;
  GenerationScheduler tight(*model_, *tokenizer_, {.parallel = 1, .context = context});
  auto full = tight.submit({tokens, greedy(16)}).get();
  EXPECT_EQ(full.stop_reason, StopReason::ContextFull);
  KvCache cache(model_->config(), context);
  const auto plain = generate(*model_, *tokenizer_, cache, tokens, greedy(16));
  EXPECT_EQ(plain.stop_reason, StopReason::ContextFull);
  EXPECT_EQ(full.tokens, plain.tokens);
  EXPECT_EQ(full.tokens.size(), 3u);
  // No tokens asked for: the job ends at once, with nothing.
  auto none = scheduler.submit({tokens, greedy(0)}).get();
  EXPECT_EQ(none.stop_reason, StopReason::MaxTokens);
  EXPECT_TRUE(none.tokens.empty());
}

TEST_F(Scheduler, CancellingEndsAJobAndFreesItsBranch) {
  GenerationScheduler scheduler(*model_, *tokenizer_, {.parallel = 2, .context = 1024, .cache_bytes = 0});
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  GenerationJob job{tokenizer_->encode("The Harlow Clinic", true, false), greedy(-1)};
  int pieces = 0;
  job.on_text = [&pieces](std::string_view) { return ++pieces < 3; };  // the client goes away
  const auto by_callback = scheduler.submit(std::move(job)).get();
  EXPECT_EQ(by_callback.stop_reason, StopReason::Cancelled);
  EXPECT_LE(by_callback.tokens.size(), 4u);
  GenerationJob flagged{tokenizer_->encode("The Harlow Clinic", true, false), greedy(-1)};
  flagged.cancel = cancel;
  flagged.on_text = [cancel](std::string_view) {
    cancel->store(true);
    return true;
  };
  EXPECT_EQ(scheduler.submit(std::move(flagged)).get().stop_reason, StopReason::Cancelled);
  EXPECT_EQ(scheduler.stats().store.live_bytes, 0u);
}

TEST_F(Scheduler, StoppingCancelsRunningAndWaitingJobs) {
  auto scheduler = std::make_unique<GenerationScheduler>(
      *model_, *tokenizer_, SchedulerOptions{.parallel = 1, .context = 1024});
  std::atomic<int> pieces{0};
  GenerationJob endless{tokenizer_->encode("The Harlow Clinic", true, false), greedy(-1)};
  endless.on_text = [&pieces](std::string_view) {
    ++pieces;
    return true;
  };
  auto running = scheduler->submit(std::move(endless));
  auto waiting = scheduler->submit({prompt(kQuestions[0]), greedy()});
  while (pieces.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  scheduler->stop();
  EXPECT_EQ(running.get().stop_reason, StopReason::Cancelled);
  EXPECT_EQ(waiting.get().stop_reason, StopReason::Cancelled);
  EXPECT_THROW(scheduler->submit({prompt(kQuestions[0]), greedy()}), Error);
  scheduler.reset();  // joins
}

TEST_F(Scheduler, ExclusiveWorkRunsBetweenStepsAndPassesItsErrorOn) {
  auto scheduler = std::make_unique<GenerationScheduler>(
      *model_, *tokenizer_, SchedulerOptions{.parallel = 2, .context = 1024});
  auto answer = scheduler->submit({prompt(kQuestions[0]), greedy()});
  std::thread::id ran_on;
  scheduler->run_exclusive([&] { ran_on = std::this_thread::get_id(); }).get();
  EXPECT_NE(ran_on, std::this_thread::get_id());
  auto failing = scheduler->run_exclusive([] { throw Error("no luck"); });
  EXPECT_THROW(failing.get(), Error);
  // The answer around it is unaffected.
  EXPECT_EQ(answer.get().tokens, alone(prompt(kQuestions[0]), greedy()).tokens);
  scheduler->stop();
  EXPECT_THROW(scheduler->run_exclusive([] {}), Error);
}

TEST_F(Scheduler, QueuedExclusiveTasksAlternateWithSteps) {
  // Five tasks queued at once while a prompt is read 8 tokens a step: one
  // task runs between two steps, never all five back to back.
  std::vector<uint64_t> steps_seen;
  std::vector<std::future<void>> tasks;
  GenerationScheduler* self = nullptr;
  SchedulerOptions options{.parallel = 1, .context = 1024, .prompt_chunk = 8};
  options.before_step = [&] {
    if (!tasks.empty()) return;
    for (int i = 0; i < 5; ++i) {
      tasks.push_back(self->run_exclusive([&] { steps_seen.push_back(self->stats().steps); }));
    }
  };
  GenerationScheduler scheduler(*model_, *tokenizer_, options);
  self = &scheduler;
  const auto tokens = prompt(kQuestions[0]);
  ASSERT_GT(tokens.size(), 8u * 8);
  auto answer = scheduler.submit({tokens, greedy()});
  EXPECT_EQ(answer.get().tokens, alone(tokens, greedy()).tokens);
  for (auto& task : tasks) task.get();
  ASSERT_EQ(steps_seen.size(), 5u);
  for (size_t i = 1; i < steps_seen.size(); ++i) EXPECT_GT(steps_seen[i], steps_seen[i - 1]) << i;
}

TEST_F(Scheduler, AFailedStepLeavesNoUnwrittenKeysAndValuesBehind) {
  // The first forward pass fails after the step has made its nodes; a later
  // prompt that begins the same way must not reuse them as cache (their
  // rows were never written) and answers as alone.
  bool fail = true;
  SchedulerOptions options{.parallel = 2, .context = 1024, .prompt_chunk = 64};
  options.before_step = [&] {
    if (std::exchange(fail, false)) throw Error("injected failure");
  };
  GenerationScheduler scheduler(*model_, *tokenizer_, options);
  const auto tokens = prompt(kQuestions[0]);
  ASSERT_GT(tokens.size(), 64u);
  EXPECT_THROW(scheduler.submit({tokens, greedy()}).get(), Error);
  EXPECT_EQ(scheduler.stats().store.nodes, 0u);
  EXPECT_EQ(scheduler.submit({tokens, greedy()}).get().tokens, alone(tokens, greedy()).tokens);
}

TEST_F(Scheduler, EachAnswerGetsItsShareOfEveryStepsEnergy) {
  // 1 J per step, shared by the tokens fed in it: the answers' energies add
  // up to the number of steps, and nothing is measured without a meter.
  SchedulerOptions options{.parallel = 4, .context = 1024, .prompt_chunk = 32};
  options.step_joules = [] { return 1.0; };
  GenerationScheduler scheduler(*model_, *tokenizer_, options);
  std::vector<std::future<GenerationResult>> futures;
  for (size_t i = 0; i < 3; ++i) futures.push_back(scheduler.submit({prompt(kQuestions[i]), greedy()}));
  double total = 0;
  for (auto& f : futures) {
    const double joules = f.get().energy_joules;
    EXPECT_GT(joules, 0);
    total += joules;
  }
  EXPECT_NEAR(total, static_cast<double>(scheduler.stats().steps), 1e-9);
  GenerationScheduler unmeasured(*model_, *tokenizer_, {.parallel = 1, .context = 1024});
  EXPECT_LT(unmeasured.submit({prompt(kQuestions[0]), greedy()}).get().energy_joules, 0);
}

TEST_F(Scheduler, BadJobsAreRefusedAtOnce) {
  GenerationScheduler scheduler(*model_, *tokenizer_, {.parallel = 1, .context = 16});
  EXPECT_THROW(scheduler.submit({{}, greedy()}), Error);
  EXPECT_THROW(scheduler.submit({prompt(kQuestions[0]), greedy()}), Error);  // over the context
  GenerationOptions bad = greedy();
  bad.sampling.repeat_penalty = 0;
  EXPECT_THROW(scheduler.submit({{1, 2}, bad}), Error);
  EXPECT_THROW(GenerationScheduler(*model_, *tokenizer_, {.parallel = 0}), Error);
}

}  // namespace
}  // namespace frugal
