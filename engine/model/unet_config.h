// The configuration of a U-Net (Ronneberger et al. 2015; 3D: Cicek et al. 2016):
// everything that decides its layers and parameters, nothing about training.
//
// Level l (0 = full resolution) has start_filters * 2^l channels. Encoder
// levels 0..depth-1 are each a block of convs_per_level convolutions followed
// by a max-pool (2x2x2, 2x2 in 2D, or the level's own window: `pooling`); the
// bottleneck is the block at level `depth`; decoder level l up-convolves level
// l+1 (by the same window) to level l's channels, concatenates the
// encoder's level-l output (skip first, then the up path) and runs a block; a
// 1x1 convolution makes the logits. A convolution is conv -> [norm] -> act;
// with a norm the convolution has no bias (the norm's beta takes its place).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/base/choice.h"
#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/pool_window.h"

namespace unet {

enum class NormChoice { none, batch, instance };
inline constexpr Choice<NormChoice> kNormChoices[] = {
    {"none", NormChoice::none, "no normalization"},
    {"batch", NormChoice::batch, "batch norm"},
    {"instance", NormChoice::instance, "instance norm (nnU-Net's)"}};
inline constexpr Choice<Padding> kPaddings[] = {
    {"same", Padding::same, "output = input size"},
    {"valid", Padding::valid, "the original U-Net's crops"}};
inline constexpr Choice<Head> kHeads[] = {
    {"sigmoid", Head::sigmoid, "one logit, 2 classes"},
    {"softmax", Head::softmax, "one logit per class"}};
inline constexpr Choice<Activation> kActivations[] = {
    {"identity", Activation::identity, "none"},
    {"relu", Activation::relu, "ReLU"},
    {"leaky_relu", Activation::leaky_relu, "LeakyReLU, slope 0.01"}};

struct UNetConfig {
  int dims = 2;                 // 2 or 3
  int depth = 4;                // number of poolings
  int start_filters = 64;
  int max_filters = 0;          // a cap on any level's filters (nnU-Net's 320 in 3D, 512 in 2D); 0: none
  // Per level, its pooling window; empty: 2 along every axis. nnU-Net's
  // anisotropic plans leave a short or coarse axis unpooled (2x2x1).
  std::vector<PoolWindow> pooling;
  int convs_per_level = 2;
  int kernel = 3;
  NormChoice norm = NormChoice::none;
  float dropout = 0.f;          // rate after the deepest encoder block and the bottleneck
  Padding padding = Padding::same;
  int in_channels = 1;
  int classes = 2;              // including background
  Head head = Head::sigmoid;    // sigmoid needs classes == 2 (one logit); softmax any >= 2
  ActivationSpec activation{Activation::relu, 0.01f};
  // nnU-Net's deep supervision: a 1x1 head on each upper decoder level with a
  // share of the loss, trained beside the full-resolution head (unet_model.h);
  // "same" padding only.
  bool deep_supervision = false;
  uint64_t seed = 0;            // He initialization

  int64_t filters(int level) const {
    const int64_t f = int64_t(start_filters) << level;
    return max_filters > 0 ? std::min<int64_t>(f, max_filters) : f;
  }
  int64_t out_channels() const { return head_channels(head, classes); }
  // Each decoder level's share of the loss: {1} without deep supervision; with
  // it 1/2^l, the lowest level 0 (when there are two or more), normalized to
  // sum 1 (nnU-Net's weights).
  std::vector<float> loss_weights() const;
  PoolWindow window(int level) const {
    return pooling.empty() ? PoolWindow{dims == 3 ? 2 : 1, 2, 2} : pooling[static_cast<size_t>(level)];
  }
  // The norm layers' kind and constants (PyTorch's defaults: eps 1e-5, momentum 0.1).
  NormSpec norm_spec() const { return {norm == NormChoice::instance ? NormKind::instance : NormKind::batch, 1e-5f, 0.1f}; }
  // Throws std::invalid_argument naming the field, the value and what is allowed.
  void validate() const;
  std::string str() const;  // one line, for logs and summaries
};

// A window as --size writes a size: W x H (2D) or W x H x D, e.g. "2x2x1".
std::string window_text(PoolWindow w, int dims);
// "2x2x1,2x2x2,..." (one window per level) <-> pooling; throws
// std::invalid_argument naming the text and what is expected.
std::string pooling_text(const std::vector<PoolWindow>& pooling, int dims);
std::vector<PoolWindow> parse_pooling(const std::string& text, int dims);

// The usual head for a number of classes: sigmoid for two, softmax beyond.
inline Head default_head(int classes) { return classes == 2 ? Head::sigmoid : Head::softmax; }

}  // namespace unet
