// Question-answering datasets for the OAE benchmark: SQuAD v1.1 / v2.0 and
// HotpotQA JSON, deterministic subsets of a chosen corpus size, and SQuAD's
// exact-match and F1 scores.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/knowledge.h"

namespace frugal {

struct QaQuestion {
  std::string id;
  std::string question;
  std::vector<std::string> answers;  // empty: unanswerable (SQuAD v2)
  std::vector<size_t> gold_passages; // indices into QaDataset::passages holding the answer
};

struct QaDataset {
  std::string name;    // "SQuAD v1.1: Super_Bowl_50", ...
  std::vector<Document> passages;
  std::vector<QaQuestion> questions;
};

// SQuAD v1.1 or v2.0 (`is_impossible`), one passage per paragraph (id
// "<title>-<index>"), or HotpotQA (a list of {_id, question, answer, context
// [[title, sentences]], supporting_facts}), one passage per titled context,
// duplicates merged. The format is recognised from the JSON. Throws Error
// naming the file and what is missing.
QaDataset load_qa_dataset(const std::filesystem::path& path);

// A deterministic subset: passages in an order drawn from `seed` are taken
// while the corpus stays within `max_corpus_tokens` (as counted by
// `count_tokens`), then up to `max_questions` questions whose gold passages
// were all taken, drawn with the same seed. Passages keep the dataset's order.
QaDataset sample_qa_dataset(const QaDataset& dataset, size_t max_corpus_tokens, size_t max_questions, uint64_t seed,
                            const std::function<size_t(const Document&)>& count_tokens);

// Corpus sizes by name: small 1000, medium 3500, large 7000 tokens.
size_t corpus_preset_tokens(std::string_view name);

// The official SQuAD evaluation: lower case, punctuation and articles
// (a, an, the) removed, whitespace collapsed.
std::string normalize_answer(std::string_view text);
// Best over the gold answers. With no gold answer (unanswerable) a
// prediction scores 1 when it is empty or "unknown" (the prompt's word for
// "not in the documents"), else 0.
double exact_match(std::string_view prediction, std::span<const std::string> answers);
double f1_score(std::string_view prediction, std::span<const std::string> answers);

}  // namespace frugal
