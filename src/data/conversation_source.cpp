#include "data/conversation_source.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "data/sharegpt_reader.h"

namespace chatmill::data {

void read_conversations(const std::vector<std::filesystem::path>& files, OnBadRecord policy, ReadReport& report,
                        const std::function<void(Conversation&&)>& fn) {
  for (const auto& f : files) {
    if (f.extension() == ".json") read_sharegpt(f, policy, report, fn);
    else read_lmsys({f}, policy, report, fn);
  }
}

void read_conversation_batches(const std::vector<std::filesystem::path>& files, OnBadRecord policy, ReadReport& report,
                               size_t batch_size, const std::function<void(std::vector<Conversation>&)>& fn) {
  // A reader thread parses the next batches while `fn` works on the current one (at most two waiting).
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<Conversation>> ready;
  bool done = false, stop = false;
  std::exception_ptr error;
  std::thread reader([&] {
    try {
      std::vector<Conversation> batch;
      auto hand_over = [&] {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return ready.size() < 2 || stop; });
        if (stop) throw std::runtime_error("stopped");
        ready.push_back(std::move(batch));
        batch = {};
        cv.notify_all();
      };
      read_conversations(files, policy, report, [&](Conversation&& c) {
        batch.push_back(std::move(c));
        if (batch.size() == batch_size) hand_over();
      });
      if (!batch.empty()) hand_over();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!stop) error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  });
  try {
    while (true) {
      std::vector<Conversation> batch;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !ready.empty() || done; });
        if (ready.empty()) break;
        batch = std::move(ready.front());
        ready.pop_front();
        cv.notify_all();
      }
      fn(batch);
    }
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
      cv.notify_all();
    }
    reader.join();
    throw;
  }
  reader.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace chatmill::data
