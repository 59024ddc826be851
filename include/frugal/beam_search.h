// Beam search with Hugging Face transformers' semantics (width, length
// penalty, early stopping True / False / "never", EOS handling,
// num_return_sequences). The search itself (`search_beams`) only needs
// next-token logits for each beam, so it is shared by every way of keeping the
// beams' KV entries: `batch` (a full KV cache per beam, the way common
// libraries do it) and, later, the shared-prefix trie.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "frugal/error.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"

namespace frugal {

// When the search may stop before max_new_tokens (transformers'
// `early_stopping`). All three need beam_width finished hypotheses first.
enum class EarlyStopping {
  True,   // stop as soon as beam_width hypotheses have finished
  False,  // heuristic: stop when the best running beam, scored at its current
          // length, cannot beat the worst finished hypothesis
  Never,  // canonical beam search: stop only when no running beam can ever
          // beat the worst finished one (bound taken at max_new_tokens when
          // length_penalty > 0, since a longer beam divides by more)
};

struct BeamSearchOptions {
  int beam_width = 4;             // k, >= 1
  int max_new_tokens = 64;        // >= 1
  float length_penalty = 1.0f;    // score = log_probability / length^length_penalty
  EarlyStopping early_stopping = EarlyStopping::False;
  int num_return_sequences = 1;   // 1..beam_width
  KvTypes cache_precision = KvPrecision::F32;  // of the beams' keys and values (trie or copies)
  // Runs each forward pass of the search (the prompt's chunks, then one per
  // step) and returns when it has run; empty: on the calling thread. A server
  // hands each pass to its batch scheduler, so that batched answers advance
  // between the passes instead of waiting for the whole search.
  std::function<void(const std::function<void()>&)> run_pass{};
  // Read before every pass: true stops the search with BeamSearchCancelled
  // (a client that went away, a server shutting down).
  std::function<bool()> cancelled{};
};

// Thrown by a search whose `cancelled` said true.
class BeamSearchCancelled : public Error {
 public:
  BeamSearchCancelled() : Error("the beam search was cancelled") {}
};

// One forward pass of a search, as `options` says it runs (used by the
// BeamSearch implementations).
void run_beam_pass(const BeamSearchOptions& options, const std::function<void()>& pass);

struct BeamHypothesis {
  std::vector<TokenId> tokens;  // generated tokens only, with the final end-of-generation token if it ended on one
  double log_probability = 0;   // sum of the tokens' log-probabilities (EOS included)
  double score = 0;             // log_probability / tokens.size() ^ length_penalty
};

struct BeamSearchResult {
  std::vector<BeamHypothesis> hypotheses;  // best score first, num_return_sequences of them (fewer only
                                           // when the vocabulary cannot fill the beam)
  size_t peak_kv_bytes = 0;   // most bytes of filled KV positions alive at once, all beams together
  double seconds = 0;         // wall time of the whole search, prompt included
  size_t forward_passes = 0;  // Model::forward calls, prompt included
};

// Throws Error for options that make no sense (beam_width < 1,
// max_new_tokens < 1, num_return_sequences outside 1..beam_width).
void check_beam_search_options(const BeamSearchOptions& options);
// The checks every BeamSearch::run makes first: the options, the tokenizer
// against the model, and a non-empty prompt.
void check_beam_search_inputs(const Model& model, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                              const BeamSearchOptions& options);

// One beam of the next step: continues beam `parent` of the current step
// with `token`.
struct BeamExtension {
  size_t parent;
  TokenId token;
};

// What the search needs from a model: logits of the next token for each beam.
// Implementations keep the beams' KV entries however they like.
class BeamLogitSource {
 public:
  virtual ~BeamLogitSource() = default;
  // Logits after the prompt: the single beam of step 0. [vocab]
  virtual std::vector<float> start() = 0;
  // Replaces the current beams by `beams` (each a parent and a new token) and
  // returns the next-token logits of every new beam, [beams.size() x vocab].
  // Beams of the current step that no new beam names are dropped.
  virtual std::vector<float> advance(std::span<const BeamExtension> beams) = 0;
};

// The search core, model-free. Per step, as transformers' BeamSearchScorer:
// every running beam's score plus the log-softmax of its logits gives
// candidates; the best 2k are ranked (ties: lower beam index, then lower token
// id); an end-of-generation candidate among the first k ranks becomes a
// finished hypothesis (the k best finished are kept), and the best k others
// continue. At max_new_tokens the running beams are added as hypotheses.
std::vector<BeamHypothesis> search_beams(BeamLogitSource& source, size_t vocab_size,
                                         const std::function<bool(TokenId)>& is_end_of_generation,
                                         const BeamSearchOptions& options);

class BeamSearch {
 public:
  virtual ~BeamSearch() = default;
  // Searches continuations of `prompt` (not empty). Throws Error for bad
  // options or a tokenizer that does not match the model.
  virtual BeamSearchResult run(Model& model, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                               const BeamSearchOptions& options) = 0;
};

// A full KV cache per beam: the prompt is processed once and copied to the
// beams; when beams are re-selected each child gets a copy of its parent's
// cache; one Model::forward of one token per beam per step.
std::unique_ptr<BeamSearch> make_batch_beam_search();
// All beams in one shared-prefix KV trie, one batched forward pass per step,
// pruned branches freed at once (the default).
std::unique_ptr<BeamSearch> make_trie_beam_search();
// "trie" or "batch"; throws Error for other names.
std::unique_ptr<BeamSearch> make_beam_search(std::string_view implementation);

}  // namespace frugal
