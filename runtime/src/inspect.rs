//! Reading runs back: lists, task details, logs and artifacts; and resume.
