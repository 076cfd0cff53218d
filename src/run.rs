//! Run. (being written)
