// Knowledge for Cache-Augmented Generation: the documents of a corpus and the
// fixed prompt layout that puts them in front of a question.
//
// A knowledge prompt is a sequence of segments, each tokenized on its own so
// that changing one document never changes the tokens of the documents
// before it (which is what lets a knowledge cache recompute only from the
// first changed document on):
//
//   BOS  header(system)  document(1) ... document(n)  |  question(q)
//   `------------------ knowledge prefix ------------'
//
// The answer follows the question segment. docs/knowledge-cache.md shows the
// plain and chat layouts in full.
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/chat.h"
#include "frugal/tokenizer.h"

namespace frugal {

struct Document {
  std::string id;     // unique within a corpus
  std::string title;
  std::string text;
};

// Reads documents from folders (their .txt and .md files, sorted by path,
// not recursive), single .txt/.md files and .jsonl files (one
// {"id", "title", "text"} object per line; id and title optional). A file's
// id is its name without extension; its title is the first Markdown heading
// ("# Title", removed from the text) or else the id. Throws Error naming the
// file (and line) for unreadable files, bad JSON, empty or duplicate ids.
std::vector<Document> read_documents(std::span<const std::filesystem::path> paths);
// The documents of one file's content, by the same rules (an upload): a
// .txt/.md file is one document, a .jsonl file one per line. Throws Error for
// other extensions, bad JSON or invalid UTF-8.
std::vector<Document> documents_from_file(const std::string& file_name, std::string_view content);
// Throws Error for an empty or repeated id.
void check_unique_ids(std::span<const Document> documents);

// A 64-bit hash of a document's id, title and text, as stored in a
// knowledge cache's document table to tell which documents changed.
uint64_t document_hash(const Document& document);

// Segment templates. Placeholders: {system} in `header`; {id}, {title},
// {text} in `document`; {question} in `question`. Template text may name
// control tokens (chat markers); placeholder values never become control
// tokens.
struct PromptTemplate {
  std::string name;      // "plain", "chat:<format>" or a template file name
  std::string header;
  std::string document;
  std::string question;
  std::string default_system;  // used when no --system text is given
};

// The built-in layout for models without a chat template (and the format
// the demo model is trained on):
//   {system}\n\n
//   Document [{id}] {title}\n{text}\n\n      (per document)
//   Question: {question}\nAnswer:
PromptTemplate plain_prompt_template();

// The same layout inside one user turn of a chat format: the knowledge and
// the question are the user message, the assistant turn is opened after it.
PromptTemplate chat_prompt_template(ChatFormat format, std::string_view bos_text = "",
                                    std::string_view eos_text = "");
// The same with the BOS / EOS texts of `tokenizer`'s vocabulary.
PromptTemplate chat_prompt_template(ChatFormat format, const Tokenizer& tokenizer);

// A template file: JSON {"header", "document", "question", "system"}
// (system optional). Throws Error for unreadable files or missing keys.
PromptTemplate read_prompt_template(const std::filesystem::path& path);

// Tokens of each segment. `header` starts with BOS when the vocabulary adds
// one.
std::vector<TokenId> encode_header(const Tokenizer& tokenizer, const PromptTemplate& prompt, std::string_view system);
std::vector<TokenId> encode_document(const Tokenizer& tokenizer, const PromptTemplate& prompt,
                                     const Document& document);
std::vector<TokenId> encode_question(const Tokenizer& tokenizer, const PromptTemplate& prompt,
                                     std::string_view question);
// The tokens a model should generate after encode_question's to answer
// `answer` (training data, docs/finetune.md): the answer as it continues
// the question segment (after a space when the segment ends in text, as
// "Answer:" does), then the end of the answer: EOS in the plain layout, the
// first token that closes the assistant's turn in a chat layout. Throws
// Error when the vocabulary has no EOS.
std::vector<TokenId> encode_answer(const Tokenizer& tokenizer, const PromptTemplate& prompt,
                                   std::string_view question, std::string_view answer);

}  // namespace frugal
