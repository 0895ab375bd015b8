public enum CredGateVersion { public static let string = "0.1.0" }
