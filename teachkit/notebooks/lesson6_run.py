# title en: Lesson 6 · Run a full transfer with your own functions
# title zh: 第 6 课 · 用你自己的函数完整运行一次风格迁移
# exercise en: bring your `content_cost`, `gram_matrix`, `layer_style_cost`, `style_cost` and `total_cost` together and run the real engine with all of them, beside teachkit's.
# exercise zh: 把你写的 `content_cost`、`gram_matrix`、`layer_style_cost`、`style_cost` 和 `total_cost` 放在一起，用它们运行真正的优化引擎，并和 teachkit 对比。

# %% [markdown] en
# # Lesson 6 · Run a full transfer with your own functions
#
# Paste your functions from lessons 2, 4 and 5 below (or write them again). Each is checked; then
# teachkit's optimisation loop runs with *all* of them, and beside it with teachkit's own functions from
# the same starting image. If a function breaks in the middle of the run, the run stops, keeps the image
# so far and tells you what happened.

# %% [markdown] zh
# # 第 6 课 · 用你自己的函数完整运行一次风格迁移
#
# 把第 2、4、5 课写的函数粘贴到下面（或者重新写一遍）。每个函数都会先被检查；然后 teachkit 的优化循环会
# *全部*用你的函数运行一次，同时从同一张起始图像出发，用 teachkit 自己的函数也运行一次。如果某个函数在运行
# 中途出错，运行会停下来，保留到那一步为止的图像，并告诉你发生了什么。

# %%
# en: draw teachkit's figures inside the notebook
# zh: 让 teachkit 的图显示在笔记本里
# %matplotlib inline
import torch

from teachkit import exercises
from teachkit.exercises.engine import default_config
from teachkit.features import load_backbone
from teachkit.messages import set_language

set_language("__LANG__")
net = load_backbone("vgg19", device="cpu")
config = default_config(size=96, steps=25)

# %% exercise
def content_cost(a_C, a_G):
    ### BEGIN SOLUTION
    J = 0.5 * torch.sum((a_C - a_G) ** 2)
    ### END SOLUTION
    return J


def gram_matrix(a):
    ### BEGIN SOLUTION
    A = a.reshape(a.shape[1], -1)
    G = A @ A.T
    ### END SOLUTION
    return G


def layer_style_cost(a_S, a_G):
    ### BEGIN SOLUTION
    _, n_C, n_H, n_W = a_G.shape
    J = torch.sum((gram_matrix(a_S) - gram_matrix(a_G)) ** 2) / (2 * n_H * n_W * n_C)
    ### END SOLUTION
    return J


def style_cost(a_S, a_G, lambdas):
    J = 0
    ### BEGIN SOLUTION
    for lam, s, g in zip(lambdas, a_S, a_G):
        J = J + lam * layer_style_cost(s, g)
    ### END SOLUTION
    return J


def total_cost(J_content, J_style, alpha=10, beta=40):
    ### BEGIN SOLUTION
    J = alpha * J_content + beta * J_style
    ### END SOLUTION
    return J

# %% check
for check in [exercises.check_content_cost(content_cost), exercises.check_gram_matrix(gram_matrix),
              exercises.check_layer_style_cost(layer_style_cost),
              exercises.check_style_cost(style_cost, layer_style_cost=layer_style_cost),
              exercises.check_total_cost(total_cost)]:
    display(check)  # noqa: F821  (IPython's display)

# %% [markdown] en
# The full run (96 px, 25 steps: well under a minute on a laptop):

# %% [markdown] zh
# 完整运行一次（96 像素，25 步：在笔记本电脑上不到一分钟）：

# %%
run = exercises.transfer_with("chelsea", "stained_glass", config,
                              content_cost=content_cost, gram_matrix=gram_matrix,
                              layer_style_cost=layer_style_cost, style_cost=style_cost, total_cost=total_cost,
                              backbone=net)
print(run)
run.figure()

# %% [markdown] en
# A constant you can *see*: the same run with the slides' constant $\big(\frac{1}{2 n_H n_W n_C}\big)^2$ in
# the style cost, but the weights tuned for the notes' constant. The style now weighs far less:

# %% [markdown] zh
# 一个能*看得见*的常数：把风格代价的常数换成幻灯片中的 $\big(\frac{1}{2 n_H n_W n_C}\big)^2$，而权重仍然是按讲义的
# 常数调好的。这时风格的分量小了很多：

# %%
def slides_constant(a_S, a_G):
    _, n_C, n_H, n_W = a_G.shape
    return torch.sum((gram_matrix(a_S) - gram_matrix(a_G)) ** 2) / (2 * n_H * n_W * n_C) ** 2


first = run
run = exercises.transfer_with("chelsea", "stained_glass", config, layer_style_cost=slides_constant, backbone=net,
                              reference=first.reference)  # teachkit's run is the same as above: reused
print(run)
run.figure()

# %% [markdown] en
# **Think:** which $\beta$ would give the slides' version the same picture as the notes' version?

# %% [markdown] zh
# **想一想**：要让幻灯片版本得到和讲义版本一样的图，$\beta$ 应该取多少？
