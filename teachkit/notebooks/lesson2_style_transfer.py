# title en: Lesson 2 · What is neural style transfer? The total cost J(G)
# title zh: 第 2 课 · 什么是神经风格迁移？总代价 J(G)
# exercise en: write `total_cost(J_content, J_style, alpha, beta)`, the cost `J(G) = α·J_content + β·J_style` that gradient descent minimises.
# exercise zh: 编写 `total_cost(J_content, J_style, alpha, beta)`，即梯度下降要最小化的代价 `J(G) = α·J_content + β·J_style`。

# %% [markdown] en
# # Lesson 2 · What is neural style transfer?
#
# Three pictures: the **content image C** (a photo), the **style image S** (a painting) and the
# **generated image G**. G starts as noise over the photo, and gradient descent changes *its pixels*
# until it shows what is in C, painted the way S is painted. A pretrained network (VGG19) only looks:
# its weights never change. What is minimised is one number, the cost
#
# $$J(G) = \alpha\, J_{\text{content}}(C, G) + \beta\, J_{\text{style}}(S, G).$$
#
# Below, teachkit runs a small transfer (96 px, a few steps) so that you see it happen.

# %% [markdown] zh
# # 第 2 课 · 什么是神经风格迁移？
#
# 一共有三张图：**内容图 C**（一张照片）、**风格图 S**（一幅画）和**生成图 G**。G 一开始是叠加了噪声的照片，
# 梯度下降一步步修改*它的像素*，直到它画的是 C 里的东西，画法却像 S。预训练的网络（VGG19）只负责“看”，
# 它的权重始终不变。要最小化的只是一个数，也就是代价
#
# $$J(G) = \alpha\, J_{\text{content}}(C, G) + \beta\, J_{\text{style}}(S, G).$$
#
# 下面用 teachkit 跑一次小规模的风格迁移（96 像素，几步），让你亲眼看到这个过程。

# %%
# en: draw teachkit's figures inside the notebook
# zh: 让 teachkit 的图显示在笔记本里
# %matplotlib inline
import matplotlib.pyplot as plt
import torch

from teachkit import exercises, viz
from teachkit.exercises.engine import default_config
from teachkit.features import load_backbone
from teachkit.messages import set_language
from teachkit.transfer import transfer

set_language("__LANG__")
net = load_backbone("vgg19", device="cpu")
result = transfer("chelsea", "stained_glass", default_config(size=96, steps=12), backbone=net)
plt.figure(figsize=(3, 3))
plt.imshow(result.image)
plt.axis("off")
plt.show()
viz.plot_history(result.history, weights=result.plan, lang="__LANG__")

# %% [markdown] en
# The curves are the terms of $J$ as the engine weighed them. Three things the formula above leaves out:
#
# - **How it descends:** teachkit uses **L-BFGS**, a kind of gradient descent that also remembers its
#   last few gradients to guess how the slope bends, so each step can go much further than a plain one.
# - **A third term:** $J$ also holds $w_{tv}\,TV(G)$, the *total variation*: the sum of the squared
#   differences between neighbouring pixels. It smooths away pixel noise that the network cannot see.
# - **Automatic weights:** α, β and $w_{tv}$ are chosen by teachkit from the two images (normalisation
#   `auto`), so that content and style start out in balance whatever their sizes; `result.weights` holds
#   the ones it used.

# %% [markdown] zh
# 这些曲线是 $J$ 的各项乘上权重之后的值。上面的公式没有写出三件事：
#
# - **怎么往下走**：teachkit 用的是 **L-BFGS**，它是梯度下降的一种，会记住最近几步的梯度，估计坡面怎么弯，
#   所以每一步都能比普通的梯度下降走得远得多。
# - **第三项**：$J$ 里还有 $w_{tv}\,TV(G)$，即*全变分*：相邻像素之差的平方和。它会抹掉网络看不见的像素噪声。
# - **自动权重**：α、β 和 $w_{tv}$ 是 teachkit 根据两张图自动选的（归一化方式 `auto`），让内容和风格一开始
#   就大致平衡，不管图的大小如何；实际用的权重在 `result.weights` 里。

# %% [markdown] en
# ## Exercise: `total_cost(J_content, J_style, alpha, beta)`
#
# Return $J = \alpha J_{\text{content}} + \beta J_{\text{style}}$. `J_content` and `J_style` are torch
# numbers (0-dimensional tensors) that carry a gradient: keep them as tensors, so that the gradient can
# flow back to the pixels of G.

# %% [markdown] zh
# ## 练习：`total_cost(J_content, J_style, alpha, beta)`
#
# 返回 $J = \alpha J_{\text{content}} + \beta J_{\text{style}}$。`J_content` 和 `J_style` 是带梯度的 torch
# 数（0 维张量）：保持它们是张量，梯度才能一路传回 G 的像素。

# %% exercise
def total_cost(J_content, J_style, alpha=10, beta=40):
    ### BEGIN SOLUTION
    J = alpha * J_content + beta * J_style
    ### END SOLUTION
    return J

# %% check
exercises.check_total_cost(total_cost)

# %% [markdown] en
# The run above recorded, at each step, the two terms and the weights it used. Recompute its last J with
# your function:

# %% [markdown] zh
# 上面的运行记录了每一步的两项代价和所用的权重。用你的函数重新算一下最后一步的 J：

# %%
last, w = result.history[-1], result.weights
if exercises.check_total_cost(total_cost).passed:
    mine = total_cost(torch.tensor(last["content"]), torch.tensor(last["style"]), w["alpha"], w["beta"])
    # en: teachkit's J without its TV term
    # zh: teachkit 的 J 去掉全变分项
    print(f"J = {float(mine):.4g}   teachkit: {last['total'] - w['tv_weight'] * last['tv']:.4g}")

# %% [markdown] en
# **Think:** multiply α and β both by 10. Does the best G change? (Lesson 3 lets you try it on the real engine.)

# %% [markdown] zh
# **想一想**：把 α 和 β 同时乘以 10，最好的 G 会变吗？（第 3 课可以在真正的优化引擎上试一试。）
