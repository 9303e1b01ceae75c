#!/usr/bin/env python3
"""Golden values for tests/data_teacher_average.rs: the weighted average of two teachers'
soft targets at temperature T (softmax for kd, sigmoid for soft_bce), in float64 numpy.

usage: python data_teacher_average.py
"""
import numpy as np

Z1 = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
Z2 = np.array([[-0.5, 1.5, 0.0], [1.0, 1.0, 4.0]])
W1, W2, T = 2.0, 1.0, 2.0


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


kd = (W1 * softmax(Z1 / T) + W2 * softmax(Z2 / T)) / (W1 + W2)
bce = (W1 * sigmoid(Z1 / T) + W2 * sigmoid(Z2 / T)) / (W1 + W2)
for name, v in (("SOFTMAX_AVG", kd), ("SIGMOID_AVG", bce)):
    print(f"const {name}: [f64; 6] = [{', '.join(f'{x:.12e}' for x in v.ravel())}];")
