"""Transfer of a case between courts (交叉执行, 指定执行, 提级执行)."""
