// XLA FFI handlers for oneDNN's LSTM primitive (one layer, one direction, float32).
//
// The layer: x [T, B, I], w_ih [I, 4H], w_hh [H, 4H], b [4H], h0, c0 [B, H]
//   -> hs [T, B, H], h_T, c_T [B, H]
// with gate blocks in oneDNN's order (i, f, g, o) along the 4H axis (the Python side permutes
// from rnnlm_jax's (i, f, o, g)). w_ih and w_hh are oneDNN's "ldigo" layout with L = D = 1
// ([I, 4, H] row-major = [I, 4H]), b is "ldgo" ([4, H]), the states "ldnc" ([1, 1, B, H]).
//
// Handlers:
//   rnnlm_onednn_lstm_fwd_infer : forward_inference, no workspace
//   rnnlm_onednn_lstm_fwd_train : forward_training, also returns the workspace (uint8 bytes)
//   rnnlm_onednn_lstm_bwd       : backward; every gradient (dx, dw_ih, dw_hh, db, dh0, dc0)
// Plain C helpers (ctypes): workspace size for a shape, version, chosen weight formats.
//
// Primitive descriptors and primitives are built once per shape (T, B, I, H) and cached.
// Training primitives take the weights in the formats they pick (format_tag::any), reordered
// from the user's ldigo buffers every call (they change every training step) into buffers
// kept per shape, as are the scratchpads (user scratchpad mode).

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
#define RNNLM_EXPORT __attribute__((visibility("default")))
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

struct Shape {
  int64_t T, B, I, H;
  bool operator<(const Shape& o) const {
    return std::tie(T, B, I, H) < std::tie(o.T, o.B, o.I, o.H);
  }
};

// A weight given to a primitive: the user's ldigo descriptor, the primitive's, and the
// reorder between them (absent when they are equal).
struct Weight {
  memory::desc user, prim;
  bool reorder_needed = false;
  dnnl::reorder to_prim, from_prim;  // user -> prim (weights), prim -> user (diff weights)
};

Weight MakeWeight(const memory::desc& user, const memory::desc& prim, bool is_diff) {
  Weight w;
  w.user = user;
  w.prim = prim;
  w.reorder_needed = !(user == prim);
  if (w.reorder_needed) {
    if (is_diff) {
      w.from_prim = dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), prim, Engine(), user));
    } else {
      w.to_prim = dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), user, Engine(), prim));
    }
  }
  return w;
}

struct Prims {
  memory::desc x, states, hs, bias;
  // inference
  dnnl::lstm_forward::primitive_desc infer_pd;
  dnnl::lstm_forward infer;
  Weight infer_wl, infer_wi;
  // training
  dnnl::lstm_forward::primitive_desc fwd_pd;
  dnnl::lstm_forward fwd;
  Weight fwd_wl, fwd_wi;
  dnnl::lstm_backward::primitive_desc bwd_pd;
  dnnl::lstm_backward bwd;
  Weight bwd_wl, bwd_wi, bwd_dwl, bwd_dwi;
  memory::desc bwd_db;
  bool bwd_db_reorder = false;
  dnnl::reorder db_from_prim;
  size_t workspace_bytes = 0;
  // Buffers kept between calls (scratchpads, reordered weights, diff weights in the
  // primitive's format): allocated and first touched once, not every call. The mutex
  // serialises calls for one shape, which share them.
  std::mutex mu;
  std::map<int, memory> buffers;
  memory& Buffer(int slot, const memory::desc& md) {
    auto it = buffers.find(slot);
    if (it == buffers.end()) it = buffers.emplace(slot, memory(md, Engine())).first;
    return it->second;
  }
};

enum Slot { kInferScratch, kFwdScratch, kBwdScratch, kInferWl, kInferWi, kFwdWl, kFwdWi, kBwdWl,
            kBwdWi, kBwdDwl, kBwdDwi, kBwdDb };

std::unique_ptr<Prims> Build(const Shape& s) {
  auto p = std::make_unique<Prims>();
  const memory::dim T = s.T, B = s.B, I = s.I, H = s.H;
  auto& eng = Engine();
  p->x = memory::desc({T, B, I}, dt::f32, tag::tnc);
  p->hs = memory::desc({T, B, H}, dt::f32, tag::tnc);
  p->states = memory::desc({1, 1, B, H}, dt::f32, tag::ldnc);
  p->bias = memory::desc({1, 1, 4, H}, dt::f32, tag::ldgo);
  memory::desc wl_user({1, 1, I, 4, H}, dt::f32, tag::ldigo);
  memory::desc wi_user({1, 1, H, 4, H}, dt::f32, tag::ldigo);
  memory::desc wl_any({1, 1, I, 4, H}, dt::f32, tag::any);
  memory::desc wi_any({1, 1, H, 4, H}, dt::f32, tag::any);
  const auto dir = dnnl::rnn_direction::unidirectional_left2right;
  // Scratchpads in user mode (buffers kept in Prims): with oneDNN 3.2's default library-mode
  // scratchpad, forward_inference crashed intermittently (in copy_bias_to_ws) when XLA ran it.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

  p->infer_pd = dnnl::lstm_forward::primitive_desc(
      eng, dnnl::prop_kind::forward_inference, dir, p->x, p->states, p->states, wl_any, wi_any,
      p->bias, p->hs, p->states, p->states, attr);
  p->infer = dnnl::lstm_forward(p->infer_pd);
  p->infer_wl = MakeWeight(wl_user, p->infer_pd.weights_layer_desc(), false);
  p->infer_wi = MakeWeight(wi_user, p->infer_pd.weights_iter_desc(), false);

  p->fwd_pd = dnnl::lstm_forward::primitive_desc(
      eng, dnnl::prop_kind::forward_training, dir, p->x, p->states, p->states, wl_any, wi_any,
      p->bias, p->hs, p->states, p->states, attr);
  p->fwd = dnnl::lstm_forward(p->fwd_pd);
  p->fwd_wl = MakeWeight(wl_user, p->fwd_pd.weights_layer_desc(), false);
  p->fwd_wi = MakeWeight(wi_user, p->fwd_pd.weights_iter_desc(), false);
  p->workspace_bytes = p->fwd_pd.workspace_desc().get_size();

  memory::desc bias_any({1, 1, 4, H}, dt::f32, tag::any);
  p->bwd_pd = dnnl::lstm_backward::primitive_desc(
      eng, dnnl::prop_kind::backward, dir, p->x, p->states, p->states, wl_any, wi_any, p->bias,
      p->hs, p->states, p->states,
      p->x, p->states, p->states, wl_any, wi_any, bias_any, p->hs, p->states, p->states,
      p->fwd_pd, attr);
  p->bwd = dnnl::lstm_backward(p->bwd_pd);
  p->bwd_wl = MakeWeight(wl_user, p->bwd_pd.weights_layer_desc(), false);
  p->bwd_wi = MakeWeight(wi_user, p->bwd_pd.weights_iter_desc(), false);
  p->bwd_dwl = MakeWeight(wl_user, p->bwd_pd.diff_weights_layer_desc(), true);
  p->bwd_dwi = MakeWeight(wi_user, p->bwd_pd.diff_weights_iter_desc(), true);
  p->bwd_db = p->bwd_pd.diff_bias_desc();
  p->bwd_db_reorder = !(p->bwd_db == p->bias);
  if (p->bwd_db_reorder) {
    p->db_from_prim =
        dnnl::reorder(dnnl::reorder::primitive_desc(eng, p->bwd_db, eng, p->bias));
  }
  return p;
}

Prims& Get(const Shape& s) {
  static std::mutex mu;
  static std::map<Shape, std::unique_ptr<Prims>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(s);
  if (it == cache.end()) it = cache.emplace(s, Build(s)).first;
  return *it->second;
}

// The weights as the primitive wants them: the user's buffer, or a reordered copy.
memory Prepared(Prims& p, int slot, const Weight& w, const void* data, dnnl::stream& strm) {
  memory user(w.user, Engine(), const_cast<void*>(data));
  if (!w.reorder_needed) return user;
  memory& prim = p.Buffer(slot, w.prim);
  w.to_prim.execute(strm, user, prim);
  return prim;
}

memory Wrap(const memory::desc& md, const void* data) {
  return memory(md, Engine(), const_cast<void*>(data));
}

// A primitive's arguments plus its scratchpad (kept in p's buffers).
std::unordered_map<int, memory> WithScratchpad(Prims& p, int slot,
                                               const dnnl::primitive_desc_base& pd,
                                               std::unordered_map<int, memory> args) {
  args.emplace(DNNL_ARG_SCRATCHPAD, p.Buffer(slot, pd.scratchpad_desc()));
  return args;
}

template <typename F>
ffi::Error Guard(F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("rnnlm_onednn: ") + e.what());
  }
  return ffi::Error::Success();
}

using F32 = ffi::Buffer<ffi::F32>;
using RF32 = ffi::ResultBuffer<ffi::F32>;

Shape ShapeOf(const F32& x, const F32& w_hh) {
  auto xd = x.dimensions();
  auto wd = w_hh.dimensions();
  return Shape{xd[0], xd[1], xd[2], wd[0]};
}

ffi::Error FwdInfer(F32 x, F32 w_ih, F32 w_hh, F32 b, F32 h0, F32 c0, RF32 hs, RF32 hT,
                    RF32 cT) {
  return Guard([&] {
    Prims& p = Get(ShapeOf(x, w_hh));
    std::lock_guard<std::mutex> lock(p.mu);
    dnnl::stream strm(Engine());
    memory wl = Prepared(p, kInferWl, p.infer_wl, w_ih.typed_data(), strm);
    memory wi = Prepared(p, kInferWi, p.infer_wi, w_hh.typed_data(), strm);
    p.infer.execute(strm, WithScratchpad(p, kInferScratch, p.infer_pd, {{DNNL_ARG_SRC_LAYER, Wrap(p.x, x.typed_data())},
                           {DNNL_ARG_SRC_ITER, Wrap(p.states, h0.typed_data())},
                           {DNNL_ARG_SRC_ITER_C, Wrap(p.states, c0.typed_data())},
                           {DNNL_ARG_WEIGHTS_LAYER, wl},
                           {DNNL_ARG_WEIGHTS_ITER, wi},
                           {DNNL_ARG_BIAS, Wrap(p.bias, b.typed_data())},
                           {DNNL_ARG_DST_LAYER, Wrap(p.hs, hs->typed_data())},
                           {DNNL_ARG_DST_ITER, Wrap(p.states, hT->typed_data())},
                           {DNNL_ARG_DST_ITER_C, Wrap(p.states, cT->typed_data())}}));
    strm.wait();
  });
}

ffi::Error FwdTrain(F32 x, F32 w_ih, F32 w_hh, F32 b, F32 h0, F32 c0, RF32 hs, RF32 hT,
                    RF32 cT, ffi::ResultBuffer<ffi::U8> ws) {
  return Guard([&] {
    Prims& p = Get(ShapeOf(x, w_hh));
    std::lock_guard<std::mutex> lock(p.mu);
    if (ws->element_count() != p.workspace_bytes) throw std::runtime_error("workspace size");
    dnnl::stream strm(Engine());
    memory wl = Prepared(p, kFwdWl, p.fwd_wl, w_ih.typed_data(), strm);
    memory wi = Prepared(p, kFwdWi, p.fwd_wi, w_hh.typed_data(), strm);
    p.fwd.execute(strm, WithScratchpad(p, kFwdScratch, p.fwd_pd, {{DNNL_ARG_SRC_LAYER, Wrap(p.x, x.typed_data())},
                         {DNNL_ARG_SRC_ITER, Wrap(p.states, h0.typed_data())},
                         {DNNL_ARG_SRC_ITER_C, Wrap(p.states, c0.typed_data())},
                         {DNNL_ARG_WEIGHTS_LAYER, wl},
                         {DNNL_ARG_WEIGHTS_ITER, wi},
                         {DNNL_ARG_BIAS, Wrap(p.bias, b.typed_data())},
                         {DNNL_ARG_DST_LAYER, Wrap(p.hs, hs->typed_data())},
                         {DNNL_ARG_DST_ITER, Wrap(p.states, hT->typed_data())},
                         {DNNL_ARG_DST_ITER_C, Wrap(p.states, cT->typed_data())},
                         {DNNL_ARG_WORKSPACE, Wrap(p.fwd_pd.workspace_desc(), ws->typed_data())}}));
    strm.wait();
  });
}

// A diff-weights destination: the user's buffer, or a primitive-format buffer reordered
// into it afterwards. Zeroed first (oneDNN's RNN backward accumulates into diff weights).
memory DiffDest(Prims& p, int slot, const Weight& w, void* data) {
  memory m = w.reorder_needed ? p.Buffer(slot, w.prim) : memory(w.user, Engine(), data);
  std::memset(m.get_data_handle(), 0, w.prim.get_size());
  return m;
}

ffi::Error Bwd(F32 x, F32 w_ih, F32 w_hh, F32 b, F32 h0, F32 c0, F32 hs, F32 hT, F32 cT,
               ffi::Buffer<ffi::U8> ws, F32 d_hs, F32 d_hT, F32 d_cT, RF32 dx, RF32 dw_ih,
               RF32 dw_hh, RF32 db, RF32 dh0, RF32 dc0) {
  return Guard([&] {
    Prims& p = Get(ShapeOf(x, w_hh));
    std::lock_guard<std::mutex> lock(p.mu);
    if (ws.element_count() != p.workspace_bytes) throw std::runtime_error("workspace size");
    dnnl::stream strm(Engine());
    memory wl = Prepared(p, kBwdWl, p.bwd_wl, w_ih.typed_data(), strm);
    memory wi = Prepared(p, kBwdWi, p.bwd_wi, w_hh.typed_data(), strm);
    memory dwl = DiffDest(p, kBwdDwl, p.bwd_dwl, dw_ih->typed_data());
    memory dwi = DiffDest(p, kBwdDwi, p.bwd_dwi, dw_hh->typed_data());
    memory dbm = p.bwd_db_reorder ? p.Buffer(kBwdDb, p.bwd_db) : Wrap(p.bias, db->typed_data());
    std::memset(dbm.get_data_handle(), 0, p.bwd_db.get_size());
    p.bwd.execute(strm, WithScratchpad(p, kBwdScratch, p.bwd_pd, {{DNNL_ARG_SRC_LAYER, Wrap(p.x, x.typed_data())},
                         {DNNL_ARG_SRC_ITER, Wrap(p.states, h0.typed_data())},
                         {DNNL_ARG_SRC_ITER_C, Wrap(p.states, c0.typed_data())},
                         {DNNL_ARG_WEIGHTS_LAYER, wl},
                         {DNNL_ARG_WEIGHTS_ITER, wi},
                         {DNNL_ARG_BIAS, Wrap(p.bias, b.typed_data())},
                         {DNNL_ARG_DST_LAYER, Wrap(p.hs, hs.typed_data())},
                         {DNNL_ARG_DST_ITER, Wrap(p.states, hT.typed_data())},
                         {DNNL_ARG_DST_ITER_C, Wrap(p.states, cT.typed_data())},
                         {DNNL_ARG_WORKSPACE, Wrap(p.bwd_pd.workspace_desc(), ws.typed_data())},
                         {DNNL_ARG_DIFF_DST_LAYER, Wrap(p.hs, d_hs.typed_data())},
                         {DNNL_ARG_DIFF_DST_ITER, Wrap(p.states, d_hT.typed_data())},
                         {DNNL_ARG_DIFF_DST_ITER_C, Wrap(p.states, d_cT.typed_data())},
                         {DNNL_ARG_DIFF_SRC_LAYER, Wrap(p.x, dx->typed_data())},
                         {DNNL_ARG_DIFF_SRC_ITER, Wrap(p.states, dh0->typed_data())},
                         {DNNL_ARG_DIFF_SRC_ITER_C, Wrap(p.states, dc0->typed_data())},
                         {DNNL_ARG_DIFF_WEIGHTS_LAYER, dwl},
                         {DNNL_ARG_DIFF_WEIGHTS_ITER, dwi},
                         {DNNL_ARG_DIFF_BIAS, dbm}}));
    if (p.bwd_dwl.reorder_needed) {
      memory user = Wrap(p.bwd_dwl.user, dw_ih->typed_data());
      p.bwd_dwl.from_prim.execute(strm, dwl, user);
    }
    if (p.bwd_dwi.reorder_needed) {
      memory user = Wrap(p.bwd_dwi.user, dw_hh->typed_data());
      p.bwd_dwi.from_prim.execute(strm, dwi, user);
    }
    if (p.bwd_db_reorder) {
      memory user = Wrap(p.bias, db->typed_data());
      p.db_from_prim.execute(strm, dbm, user);
    }
    strm.wait();
  });
}

std::string FormatOf(const memory::desc& md) {
  std::ostringstream os;
  os << "ndims=" << md.get_ndims() << " format_kind=" << static_cast<int>(md.get_format_kind());
  if (md.get_format_kind() == memory::format_kind::blocked) {
    os << " strides=[";
    for (auto s : md.get_strides()) os << s << ",";
    os << "]";
  }
  os << " bytes=" << md.get_size();
  return os.str();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_onednn_lstm_fwd_infer, FwdInfer,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_onednn_lstm_fwd_train, FwdTrain,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<ffi::Buffer<ffi::U8>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(rnnlm_onednn_lstm_bwd, Bwd,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Ret<F32>());

extern "C" {

// Bytes of the forward-training workspace for this shape; -1 on error (message in err).
RNNLM_EXPORT int64_t rnnlm_onednn_lstm_workspace_bytes(int64_t T, int64_t B, int64_t I, int64_t H,
                                          char* err, int64_t err_len) {
  try {
    return static_cast<int64_t>(Get(Shape{T, B, I, H}).workspace_bytes);
  } catch (const std::exception& e) {
    if (err && err_len > 0) {
      std::strncpy(err, e.what(), err_len - 1);
      err[err_len - 1] = 0;
    }
    return -1;
  }
}

// The formats oneDNN chose for the weights of every primitive of this shape (for reports).
RNNLM_EXPORT int64_t rnnlm_onednn_lstm_describe(int64_t T, int64_t B, int64_t I, int64_t H, char* out,
                                   int64_t out_len) {
  std::string s;
  try {
    Prims& p = Get(Shape{T, B, I, H});
    std::ostringstream os;
    os << "infer w_layer: " << FormatOf(p.infer_wl.prim) << (p.infer_wl.reorder_needed ? " (reorder)" : " (user)") << "\n"
       << "infer w_iter:  " << FormatOf(p.infer_wi.prim) << (p.infer_wi.reorder_needed ? " (reorder)" : " (user)") << "\n"
       << "fwd w_layer:   " << FormatOf(p.fwd_wl.prim) << (p.fwd_wl.reorder_needed ? " (reorder)" : " (user)") << "\n"
       << "fwd w_iter:    " << FormatOf(p.fwd_wi.prim) << (p.fwd_wi.reorder_needed ? " (reorder)" : " (user)") << "\n"
       << "bwd w_layer:   " << FormatOf(p.bwd_wl.prim) << (p.bwd_wl.reorder_needed ? " (reorder)" : " (user)") << "\n"
       << "bwd w_iter:    " << FormatOf(p.bwd_wi.prim) << (p.bwd_wi.reorder_needed ? " (reorder)" : " (user)") << "\n"
       << "bwd dw_layer:  " << FormatOf(p.bwd_dwl.prim) << (p.bwd_dwl.reorder_needed ? " (reorder)" : " (user)") << "\n"
       << "bwd dw_iter:   " << FormatOf(p.bwd_dwi.prim) << (p.bwd_dwi.reorder_needed ? " (reorder)" : " (user)") << "\n"
       << "bwd d_bias:    " << FormatOf(p.bwd_db) << (p.bwd_db_reorder ? " (reorder)" : " (user)") << "\n"
       << "workspace bytes: " << p.workspace_bytes << "\n"
       << "fwd impl: " << p.fwd_pd.impl_info_str() << "\n"
       << "bwd impl: " << p.bwd_pd.impl_info_str() << "\n";
    s = os.str();
  } catch (const std::exception& e) {
    s = std::string("error: ") + e.what();
  }
  if (out && out_len > 0) {
    std::strncpy(out, s.c_str(), out_len - 1);
    out[out_len - 1] = 0;
  }
  return static_cast<int64_t>(s.size());
}

RNNLM_EXPORT void rnnlm_onednn_version(int64_t* out) {
  const dnnl_version_t* v = dnnl_version();
  out[0] = v->major;
  out[1] = v->minor;
  out[2] = v->patch;
  out[3] = static_cast<int64_t>(v->cpu_runtime);
}

}  // extern "C"
