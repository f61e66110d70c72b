# title en: Lesson 5 · Style cost and the Gram matrix
# title zh: 第 5 课 · 风格代价与 Gram 矩阵
# exercise en: write `gram_matrix(a)`, `layer_style_cost(a_S, a_G)` and `style_cost(a_S, a_G, lambdas) = Σ λ[l]·J_style[l]`; the checks explain every property that fails.
# exercise zh: 编写 `gram_matrix(a)`、`layer_style_cost(a_S, a_G)` 和 `style_cost(a_S, a_G, lambdas) = Σ λ[l]·J_style[l]`；哪条性质不满足，检查都会说明原因。

# %% [markdown] en
# # Lesson 5 · Style cost and the Gram matrix
#
# Style is what the channels of a layer do *together*: which features fire at the same places. The
# Gram (style) matrix of layer $l$ has one entry per pair of channels:
#
# $$G^{[l]}_{kk'} = \sum_{i}\sum_{j} a^{[l]}_{ijk}\, a^{[l]}_{ijk'} .$$
#
# Unroll the activation into a matrix $A$ with one row per channel ($n_C \times n_H n_W$): then $G = A A^{\mathsf T}$.
# The style cost of one layer compares the two Gram matrices:
#
# $$J^{[l]}_{\text{style}}(S, G) = \frac{1}{2 n_H n_W n_C} \sum_{k}\sum_{k'} \big(G^{[l](S)}_{kk'} - G^{[l](G)}_{kk'}\big)^2 ,\qquad
# J_{\text{style}} = \sum_l \lambda^{[l]} J^{[l]}_{\text{style}} .$$

# %% [markdown] zh
# # 第 5 课 · 风格代价与 Gram 矩阵
#
# 风格指的是一层中各个通道*一起*的表现：哪些特征总在同样的位置同时出现。第 $l$ 层的 Gram 矩阵（风格矩阵）
# 对每一对通道有一个元素：
#
# $$G^{[l]}_{kk'} = \sum_{i}\sum_{j} a^{[l]}_{ijk}\, a^{[l]}_{ijk'} .$$
#
# 把激活展开成每个通道一行的矩阵 $A$（$n_C \times n_H n_W$），就有 $G = A A^{\mathsf T}$。单层的风格代价比较两个
# Gram 矩阵：
#
# $$J^{[l]}_{\text{style}}(S, G) = \frac{1}{2 n_H n_W n_C} \sum_{k}\sum_{k'} \big(G^{[l](S)}_{kk'} - G^{[l](G)}_{kk'}\big)^2 ,\qquad
# J_{\text{style}} = \sum_l \lambda^{[l]} J^{[l]}_{\text{style}} .$$

# %%
# en: draw teachkit's figures inside the notebook
# zh: 让 teachkit 的图显示在笔记本里
# %matplotlib inline
import torch

from teachkit import exercises
from teachkit.features import load_backbone
from teachkit.gram import gram_figure, position_blindness_figure
from teachkit.messages import set_language

set_language("__LANG__")
net = load_backbone("vgg19", device="cpu")
gram_figure(net, "stained_glass", "relu2_1", n_channels=12, size=96, lang="__LANG__")

# %% [markdown] en
# ## Exercise 1: `gram_matrix(a)`
#
# `a` has shape `(1, n_C, n_H, n_W)`. Return the `n_C × n_C` Gram matrix. Careful with the reshape: the
# rows of $A$ must be the channels.

# %% [markdown] zh
# ## 练习 1：`gram_matrix(a)`
#
# `a` 的形状是 `(1, n_C, n_H, n_W)`。返回 `n_C × n_C` 的 Gram 矩阵。reshape 时要小心：$A$ 的每一行必须是一个通道。

# %% exercise
def gram_matrix(a):
    ### BEGIN SOLUTION
    n_C = a.shape[1]
    A = a.reshape(n_C, -1)
    G = A @ A.T
    ### END SOLUTION
    return G

# %% check
exercises.check_gram_matrix(gram_matrix)

# %% [markdown] en
# The Gram matrix sums over positions, so it does not care *where* things are: shuffle the tiles of a
# picture and it hardly changes, while the feature maps move (teachkit's figure):

# %% [markdown] zh
# Gram 矩阵是对所有位置求和的，所以它不在乎东西*在哪里*：把图片切块打乱，它几乎不变，而特征图却跟着移动了
# （teachkit 画的图）：

# %%
position_blindness_figure(net, "chelsea", tiles=2, size=96, lang="__LANG__")

# %% [markdown] en
# ## Exercise 2: `layer_style_cost(a_S, a_G)`
#
# $J^{[l]}_{\text{style}}$ from the two activations (same shape), with the notes' constant $\frac{1}{2 n_H n_W n_C}$.
# Use your `gram_matrix`.

# %% [markdown] zh
# ## 练习 2：`layer_style_cost(a_S, a_G)`
#
# 由两个（形状相同的）激活算出 $J^{[l]}_{\text{style}}$，常数用讲义中的 $\frac{1}{2 n_H n_W n_C}$。
# 用上你写的 `gram_matrix`。

# %% exercise
def layer_style_cost(a_S, a_G):
    ### BEGIN SOLUTION
    _, n_C, n_H, n_W = a_G.shape
    J = torch.sum((gram_matrix(a_S) - gram_matrix(a_G)) ** 2) / (2 * n_H * n_W * n_C)
    ### END SOLUTION
    return J

# %% check
exercises.check_layer_style_cost(layer_style_cost)

# %% [markdown] en
# The course slides write the constant as $\big(\frac{1}{2 n_H n_W n_C}\big)^2$. Any constant works once
# $\beta$ and $\lambda^{[l]}$ are tuned, but the check tells them apart:

# %% [markdown] zh
# 课程幻灯片把常数写成 $\big(\frac{1}{2 n_H n_W n_C}\big)^2$。只要调好 $\beta$ 和 $\lambda^{[l]}$，用哪个常数都可以，
# 但检查能把它们区分开：

# %%
def slides_version(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((gram_matrix(a_S) - gram_matrix(a_G)) ** 2) / (2 * n_H * n_W * n_C) ** 2


exercises.check_layer_style_cost(slides_version)

# %% [markdown] en
# ## Exercise 3: `style_cost(a_S, a_G, lambdas)`
#
# `a_S` and `a_G` are lists with one activation per layer, `lambdas` the list of the weights $\lambda^{[l]}$.
# Return $\sum_l \lambda^{[l]} J^{[l]}_{\text{style}}$ using your `layer_style_cost`.

# %% [markdown] zh
# ## 练习 3：`style_cost(a_S, a_G, lambdas)`
#
# `a_S` 和 `a_G` 是列表，每层一个激活；`lambdas` 是权重 $\lambda^{[l]}$ 的列表。用你写的 `layer_style_cost`
# 返回 $\sum_l \lambda^{[l]} J^{[l]}_{\text{style}}$。

# %% exercise
def style_cost(a_S, a_G, lambdas):
    J = 0
    ### BEGIN SOLUTION
    for lam, s, g in zip(lambdas, a_S, a_G):
        J = J + lam * layer_style_cost(s, g)
    ### END SOLUTION
    return J

# %% check
exercises.check_style_cost(style_cost, layer_style_cost=layer_style_cost)

# %% [markdown] en
# **Think:** the check shuffles the positions of G and expects the same $J^{[l]}_{\text{style}}$. What does
# that tell you about what the style cost can and cannot see?

# %% [markdown] zh
# **想一想**：检查会打乱 G 的位置，并要求 $J^{[l]}_{\text{style}}$ 不变。这说明风格代价能看到什么、看不到什么？
