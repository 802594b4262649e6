"""Several creditors of one debtor (参与分配, 轮候): the order of freezes on one account
across cases, consent to a later case's deduct, and distribution plans."""
