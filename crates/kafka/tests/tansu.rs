//! Against a real Kafka-compatible broker process (Tansu).
