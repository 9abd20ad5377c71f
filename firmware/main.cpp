// tfgen firmware: the entry points. ESP-IDF calls app_main, Arduino setup()/loop(), the host and
// bare-metal targets main(); all of them run Start() once and then, outside test mode, Step().
//
// TFGEN_VALIDATE (the `validate` environment, `tfgen verify --port`): serve the host's vectors over
// the serial link (tfgen_validate.h), for ever.
// TFGEN_TEST_MODE (the `sim` and `qemu` environments, and host builds): replay the embedded test
// vectors and report (tfgen_replay.h); main() returns non-zero if anything failed.
// Otherwise: an example of feeding sensor data to the model. Replace read_sensor() with your own
// code; the rest shows the quantize -> invoke -> dequantize round.
#include <cstddef>
#include <cstdint>

#include "tfgen_platform.h"
#include "tfgen_replay.h"
#include "tfgen_runtime.h"
#include "tfgen_validate.h"

#if defined(ARDUINO)
#include <Arduino.h>
#elif defined(ESP_PLATFORM)
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#endif

namespace {

tfgen::Runner g_runner;

#if defined(TFGEN_VALIDATE)

int Start() {
  tfgen::platform::Init();
  tfgen::ServeValidation(g_runner);
}

#elif defined(TFGEN_TEST_MODE)

int Start() {
  tfgen::platform::Init();
  return tfgen::ReplayVectors(g_runner);  // initializes the runner after its first line
}

#else  // the example

constexpr std::size_t kChunk = 32;     // values converted at a time (no frame-sized float buffer)
constexpr std::size_t kShownValues = 8;
std::uint32_t g_frame = 0;

// Replace with your sensor. Writes ``count`` float values of input ``input``, starting at value
// ``first`` of the current frame (the input tensor in row-major order), in the units the model was
// trained on. This stand-in produces a slow triangle wave between -1 and 1 (no libm: a real sensor
// driver brings its own code, the example should not add any).
void read_sensor(int input, std::size_t first, float* values, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t phase = (g_frame + first + i + 16u * static_cast<std::size_t>(input)) % 64u;
    values[i] = static_cast<float>(phase < 32u ? phase : 64u - phase) / 16.0f - 1.0f;
  }
}

std::size_t Elements(const tfgen_model::TensorInfo& info) {
  std::size_t n = 1;
  for (int d = 0; d < info.num_dims; ++d) {
    n *= static_cast<std::size_t>(info.dims[d]);
  }
  return n;
}

// "-1.2345": newlib-nano's printf has no %f. Magnitudes beyond 200,000 print as 200000.0000 (the
// scaled value stays within a 32-bit unsigned long); NaN prints as "nan". Single-precision only: no
// double arithmetic (software-emulated on an M4F) in the image.
void PrintFixed(float value) {
  if (value != value) {
    tfgen::platform::Print("nan");
    return;
  }
  const float limit = 2.0e5f;
  const bool negative = value < 0.0f;
  const float magnitude = negative ? -value : value;
  const unsigned long scaled =
      static_cast<unsigned long>((magnitude > limit ? limit : magnitude) * 10000.0f + 0.5f);
  tfgen::platform::Printf("%s%lu.%04lu", negative ? "-" : "", scaled / 10000, scaled % 10000);
}

int Start() {
  tfgen::platform::Init();
  if (g_runner.Init() != kTfLiteOk) {
    return 1;
  }
  tfgen::platform::Printf("tfgen model=%s arena_used=%lu of %lu bytes\n", tfgen_model::kModelName,
                          static_cast<unsigned long>(g_runner.arena_used_bytes()),
                          static_cast<unsigned long>(tfgen_model::kArenaSize));
  return 0;
}

int Step() {
  float values[kChunk];
  // 1. Sensor data in, quantized into each input tensor with its scale and zero point.
  for (int i = 0; i < tfgen_model::kNumInputs; ++i) {
    const std::size_t total = Elements(tfgen_model::kInputs[i]);
    for (std::size_t first = 0; first < total; first += kChunk) {
      const std::size_t n = total - first < kChunk ? total - first : kChunk;
      read_sensor(i, first, values, n);
      if (g_runner.SetInputFloats(i, values, n, first) != kTfLiteOk) {
        return 1;
      }
    }
  }
  // 2. Inference.
  if (g_runner.Invoke() != kTfLiteOk) {
    return 1;
  }
  // 3. Each output dequantized: its first values and where its largest value is.
  for (int o = 0; o < tfgen_model::kNumOutputs; ++o) {
    const std::size_t total = Elements(tfgen_model::kOutputs[o]);
    std::size_t best = 0;
    float best_value = 0.0f;
    tfgen::platform::Printf("frame %lu output %d (%s):", static_cast<unsigned long>(g_frame), o,
                            tfgen_model::kOutputs[o].name);
    for (std::size_t first = 0; first < total; first += kChunk) {
      const std::size_t n = total - first < kChunk ? total - first : kChunk;
      if (g_runner.GetOutputFloats(o, values, n, first) != kTfLiteOk) {
        return 1;
      }
      for (std::size_t k = 0; k < n; ++k) {
        if (first + k < kShownValues) {
          tfgen::platform::Print(" ");
          PrintFixed(values[k]);
        }
        if (first + k == 0 || values[k] > best_value) {
          best = first + k;
          best_value = values[k];
        }
      }
    }
    tfgen::platform::Printf("%s max at %lu (%lu us)\n", total > kShownValues ? " ..." : "",
                            static_cast<unsigned long>(best),
                            static_cast<unsigned long>(g_runner.last_invoke_us()));
  }
  ++g_frame;
  return 0;
}

#endif  // TFGEN_VALIDATE, TFGEN_TEST_MODE

}  // namespace

#if defined(ARDUINO)

namespace {
int g_status = 0;
}  // namespace

void setup() { g_status = Start(); }

void loop() {
#if !defined(TFGEN_TEST_MODE) && !defined(TFGEN_VALIDATE)
  if (g_status == 0) {
    g_status = Step();
  }
#endif
  delay(1000);
}

#elif defined(ESP_PLATFORM)

extern "C" void app_main() {
  int status = Start();
#if !defined(TFGEN_TEST_MODE) && !defined(TFGEN_VALIDATE)
  while (status == 0) {
    status = Step();
    vTaskDelay(pdMS_TO_TICKS(1000));
  }
#endif
  (void)status;
}

#else  // host, or bare metal with semihosting

int main() {
  int status = Start();
#if !defined(TFGEN_TEST_MODE) && !defined(TFGEN_VALIDATE)
  constexpr int kExampleFrames = 3;
  for (int frame = 0; status == 0 && frame < kExampleFrames; ++frame) {
    status = Step();
  }
#endif
  return status;
}

#endif
